package node

import (
	"encoding/json"
	"os/exec"
	"testing"
)

// hooksScript adopts servers as the preload does and registers a
// per-request hook before one is adopted and after the other; it prints
// the 'request' listener counts and how many times the hook ran for one
// request to each.
const hooksScript = `
const http = require('node:http')
const dir = process.argv[1]
const { newState } = require(dir + '/base.cjs')
const { adopt } = require(dir + '/listen.cjs')
const { onRequest } = require(dir + '/requests.cjs')
const app = (req, res) => res.end('ok')
const none = newState(); const plain = http.createServer(app); adopt(none, plain)
const early = newState(); let ranEarly = 0
onRequest(early, () => { ranEarly++ })
const first = http.createServer(app); adopt(early, first)
const late = newState(); let ranLate = 0
const second = http.createServer(app); adopt(late, second)
const before = second.listenerCount('request')
onRequest(late, () => { ranLate++ })
onRequest(late, () => { ranLate++ })
const get = (s) => new Promise((resolve) => s.listen(0, '127.0.0.1', () => {
  http.get({ port: s.address().port, agent: false }, (r) => { r.resume(); r.on('end', () => { s.close(); resolve() }) })
}))
Promise.all([get(plain), get(first), get(second)]).then(() => console.log(JSON.stringify({
  plain: plain.listenerCount('request'), early: first.listenerCount('request'), lateBefore: before,
  late: second.listenerCount('request'), ranEarly, ranLate
})))
`

// TestRequestHooks: a server gets the preload's 'request' listener only
// once a feature registers a hook, whether before or after the server was
// adopted, and once however many hooks there are.
func TestRequestHooks(t *testing.T) {
	dir := preloadDir(t)
	bin, err := Binary()
	if err != nil {
		t.Skip(err)
	}
	out, err := exec.Command(bin, "-e", hooksScript, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got map[string]int
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := map[string]int{"plain": 1, "early": 2, "lateBefore": 1, "late": 2, "ranEarly": 1, "ranLate": 2}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}
