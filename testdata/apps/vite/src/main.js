import './style.css'
import logo from './logo.svg'

const app = document.querySelector('#app')
app.innerHTML = `<img src="${logo}" alt="logo" width="64"><h1>Hello from Vite under wattd</h1><p>path: ${location.pathname}</p>`
