module.exports=[17262,(a,b,c)=>{}];

//# sourceMappingURL=_next-internal_server_app_mesh_page_actions_1rd1hx9e_mxt1.js.map