// Package supervisor is the wattd runtime: it turns a loaded watt.json into
// applications made of worker slots, runs one owner goroutine per slot that
// starts, watches, restarts and stops the slot's worker processes, and
// answers the admin API. Subpackages hold the parts that stand alone:
// config (watt.json), listeners (sockets wattd owns), logs (worker output),
// admin (the local control socket and its client) and rundir (where a
// runtime keeps its sockets).
package supervisor
