package main

import (
	"time"

	"github.com/wattd/wattd/cmd/wattd/internal/earlysig"
)

// hangupEcho is how long after a terminal's hang-up the SIGHUPs that
// follow are taken as part of it: the kernel signals the session leader
// and then the foreground process group, and a shell passes its own
// SIGHUP on to its jobs, so wattd gets two or three within milliseconds.
const hangupEcho = time.Second

// hupKind is what a SIGHUP means.
type hupKind int

const (
	hupReload  hupKind = iota // sent to reload (kill -HUP, systemd's ExecReload)
	hupHangup                 // wattd's controlling terminal just went away
	hupEchoing                // another SIGHUP of the same hang-up
)

// hangupWatch tells the SIGHUP of a terminal that went away (an SSH
// session dropped, a terminal window closed, `script` killed) from one an
// operator sends. SIGHUP reloads, but a hang-up is no request to read the
// configuration again, maybe half edited. It ends a program run in that
// terminal, so wattd stops, gracefully; unless SIGHUP was ignored when
// wattd started (nohup), which asks a program to outlive its terminal:
// wattd then goes on without it. A hang-up is the loss of the controlling
// terminal wattd had: the kernel detaches the terminal from every process
// of the session before it sends the signals.
type hangupWatch struct {
	// outlive: SIGHUP was ignored when wattd started (nohup wattd …), so
	// a hang-up leaves it running.
	outlive bool
	hadTTY  bool      // wattd had a controlling terminal, as of the last SIGHUP
	echoes  time.Time // until when a SIGHUP is one more of the last hang-up
	hasTTY  func() bool
	now     func() time.Time
}

// newHangupWatch starts from what was so before wattd took SIGHUP, which
// ends an ignoring of it that wattd was started with.
func newHangupWatch(before earlysig.Before) *hangupWatch {
	return &hangupWatch{outlive: before.HangupIgnored, hadTTY: before.Terminal, hasTTY: earlysig.HasTerminal, now: time.Now}
}

// classify says what the SIGHUP that just came means.
func (w *hangupWatch) classify() hupKind {
	now := w.now()
	if now.Before(w.echoes) {
		return hupEchoing
	}
	if w.hadTTY && !w.hasTTY() {
		w.hadTTY = false
		w.echoes = now.Add(hangupEcho)
		return hupHangup
	}
	return hupReload
}
