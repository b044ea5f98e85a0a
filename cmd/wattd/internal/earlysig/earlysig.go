// Package earlysig takes the signals of `wattd start` and `wattd dev` from
// package initialisation, as early as a Go program can.
//
// Until a Go program asks for a signal, the signal gets its default
// action: SIGTERM, SIGINT, SIGHUP, SIGQUIT and SIGUSR2 end the program.
// wattd's main runs only once every package it links is initialised (the
// OTLP exporters, gRPC and protobuf, the Prometheus client: 23-36 ms after
// exec on a loaded 2-CPU machine), so a reload or a stop sent right after
// a start would end it by the default action. This
// package depends on os/signal alone, and Go initialises a package as soon
// as its imports are, in import path order otherwise: its init runs among
// the first few dozen of wattd's packages (28th of about 220, 5-6 ms
// after exec on that machine). It holds the signals in a
// channel that start takes (Take), which acts on them once the runtime
// runs.
//
// Other commands keep Go's defaults: the exec helper and the static
// server never reach main, and ctl, build and the rest act on signals, or
// not, as they do without this package.
package earlysig

import (
	"os"
	"os/signal"
	"syscall"
)

// Signals are the signals held.
var Signals = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGUSR2}

// Before is what was so before the signals were taken.
type Before struct {
	// HangupIgnored: SIGHUP was ignored when wattd started (nohup); taking
	// it ends the ignoring, so only this says so afterwards.
	HangupIgnored bool
	// Terminal: wattd had a controlling terminal.
	Terminal bool
}

var (
	held   chan os.Signal
	before Before
)

func init() {
	if len(os.Args) > 1 && (os.Args[1] == "start" || os.Args[1] == "dev") {
		take()
	}
}

func take() {
	before = Before{HangupIgnored: signal.Ignored(syscall.SIGHUP), Terminal: HasTerminal()}
	held = make(chan os.Signal, 8)
	signal.Notify(held, Signals...)
}

// Take returns the channel that receives Signals, with those that came
// since the start, and what was so before they were taken. Where init did
// not take them (a command line init did not recognise), it takes them
// now. Call it once.
func Take() (<-chan os.Signal, Before) {
	if held == nil {
		take()
	}
	return held, before
}

// Release gives the signals back to their default action.
func Release() {
	if held != nil {
		signal.Stop(held)
	}
}

// HasTerminal reports whether the process has a controlling terminal:
// /dev/tty opens only then (ENXIO otherwise, and after a hang-up).
func HasTerminal() bool {
	fd, err := syscall.Open("/dev/tty", syscall.O_RDONLY|syscall.O_NOCTTY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	_ = syscall.Close(fd)
	return true
}
