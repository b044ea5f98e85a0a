// Package logs owns wattd's logging: the daemon's own zap logger (New), in
// pino's line format when it is not for a terminal (pino.go), the masking
// of logger.redact's paths (Redactor), the in-memory buffer of recent lines
// that `wattd ctl logs` reads (Recent), and the pumps that turn each worker
// process's stdout and stderr into structured log entries (Sink). Worker output is untrusted and unbounded,
// so everything here is built so that a noisy worker can neither stall on a
// full pipe nor grow the daemon's memory: lines are cut to a fixed size,
// queued in a bounded buffer and dropped (and counted) when logging falls
// behind.
package logs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"
)

// silentLevel sits above every level zap can emit, so an AtomicLevel set to
// it enables nothing while still letting the admin API raise it later.
const silentLevel = zapcore.InvalidLevel

// TraceLevel is pino's trace, below zap's debug: workers' trace entries
// are kept as such, and shown when wattd's level is trace.
const TraceLevel = zapcore.DebugLevel - 1

// FormatEnv names the environment variable that forces the output format
// ("json" or "console") regardless of whether the output is a terminal.
const FormatEnv = "WATTD_LOG_FORMAT"

// ParseLevel maps a wattd level name to a zap level. The names are the ones
// wattd accepts on its command line and in watt.json: trace (TraceLevel),
// debug, info, warn, error, fatal and silent. An empty name means info.
func ParseLevel(name string) (zapcore.Level, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "trace":
		return TraceLevel, nil
	case "debug":
		return zapcore.DebugLevel, nil
	case "", "info":
		return zapcore.InfoLevel, nil
	case "warn", "warning":
		return zapcore.WarnLevel, nil
	case "error":
		return zapcore.ErrorLevel, nil
	case "fatal":
		return zapcore.FatalLevel, nil
	case "silent":
		return silentLevel, nil
	}
	return zapcore.InvalidLevel, fmt.Errorf("unknown log level %q (want trace, debug, info, warn, error, fatal or silent)", name)
}

// Setup is what New needs beyond the output.
type Setup struct {
	Level string // wattd's level name; "" is info
	// Redact masks values in every entry, wattd's and structured worker
	// lines alike; nil masks nothing.
	Redact *Redactor
	// Recent, when set, keeps the latest entries in the pino format for
	// `wattd ctl logs`, whatever the output's format.
	Recent *Recent
	// Export, when set, is also given every entry, as its pino JSON line
	// (without the newline, after redaction and level filtering, whatever
	// the output's format): the OTLP log exporter
	// (logger.openTelemetryExporter). It must not block or keep the line.
	Export func(line []byte)

	journal bool // the output is journald's stream (journalStream)
}

// New builds the daemon's logger writing to out. The returned AtomicLevel
// is the logger's live threshold, so the level can be changed at runtime.
func New(level string, out *os.File) (*zap.Logger, zap.AtomicLevel, error) {
	return NewWith(out, Setup{Level: level})
}

// NewWith is New with redaction and a buffer of recent entries.
//
// A person watching a terminal gets a coloured one-line-per-entry console
// format; anything else (files, journald, pipes into collectors) gets
// pino's JSON lines, as Watt prints them (pino.go), so it stays
// machine-readable by the tools written for Watt. A non-empty NO_COLOR
// keeps the console format on a terminal but without colour;
// WATTD_LOG_FORMAT=json|console overrides the choice, and a forced console
// format is coloured only on a terminal. Sampling is deliberately off:
// dropping repeated worker lines would hide exactly the output people
// look for when a worker misbehaves.
func NewWith(out *os.File, setup Setup) (*zap.Logger, zap.AtomicLevel, error) {
	if out == nil {
		return nil, zap.AtomicLevel{}, fmt.Errorf("logs: nil output file")
	}
	fi, err := out.Stat()
	async := err != nil || !fi.Mode().IsRegular()
	setup.journal = err == nil && journalStream(fi, os.Getenv("JOURNAL_STREAM"))
	return newLogger(setup, zapcore.Lock(newOutput(out, async)), term.IsTerminal(int(out.Fd())), os.Getenv)
}

// journalStream tells whether fi is the stream systemd connected to
// journald, as JOURNAL_STREAM ("<device>:<inode>") names it: a service's
// standard error, not a pipe or file it was redirected to.
func journalStream(fi os.FileInfo, env string) bool {
	dev, ino, ok := strings.Cut(env, ":")
	st, isUnix := fi.Sys().(*syscall.Stat_t)
	if !ok || !isUnix {
		return false
	}
	d, err1 := strconv.ParseUint(dev, 10, 64)
	i, err2 := strconv.ParseUint(ino, 10, 64)
	return err1 == nil && err2 == nil && uint64(st.Dev) == d && st.Ino == i
}

// newLogger is NewWith with its environment made explicit so tests can
// pretend to be on a terminal.
func newLogger(setup Setup, ws zapcore.WriteSyncer, isTerminal bool, getenv func(string) string) (*zap.Logger, zap.AtomicLevel, error) {
	lvl, err := ParseLevel(setup.Level)
	if err != nil {
		return nil, zap.AtomicLevel{}, fmt.Errorf("logs: %w", err)
	}
	// NO_COLOR follows no-color.org: present and non-empty disables colour.
	noColor := getenv("NO_COLOR") != ""
	console := isTerminal
	switch f := strings.ToLower(strings.TrimSpace(getenv(FormatEnv))); f {
	case "":
	case "json":
		console = false
	case "console", "text":
		console = true
	default:
		return nil, zap.AtomicLevel{}, fmt.Errorf("logs: %s=%q: want json or console", FormatEnv, f)
	}

	atom := zap.NewAtomicLevelAt(lvl)
	var core zapcore.Core
	if console {
		core = zapcore.NewCore(printableEncoder{zapcore.NewConsoleEncoder(consoleEncoderConfig(isTerminal && !noColor))}, ws, atom)
		if setup.Recent != nil || setup.Export != nil {
			core = zapcore.NewTee(core, newLineCore(atom, nil, setup.Recent, setup.Export))
		}
	} else {
		lc := newLineCore(atom, ws, setup.Recent, setup.Export)
		lc.journal = setup.journal
		core = lc
	}
	if setup.Redact != nil {
		core = redactCore{Core: core, r: setup.Redact}
	}
	// No caller or stacktrace options: most entries are relayed worker
	// lines, for which a location inside wattd would be misleading.
	logger := zap.New(core, zap.ErrorOutput(zapcore.Lock(os.Stderr)))
	return logger, atom, nil
}

// printableEncoder writes each entry's message as Printable makes it: in
// the console format the message is written as it is (the fields are
// JSON, escaped already), and most messages are lines a worker wrote,
// which must neither pass for entries of wattd's own nor act on the
// operator's terminal.
type printableEncoder struct{ zapcore.Encoder }

func (e printableEncoder) Clone() zapcore.Encoder { return printableEncoder{e.Encoder.Clone()} }

func (e printableEncoder) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	ent.Message = Printable(ent.Message)
	return e.Encoder.EncodeEntry(ent, fields)
}

func consoleEncoderConfig(color bool) zapcore.EncoderConfig {
	cfg := zap.NewProductionEncoderConfig()
	cfg.TimeKey = "time"
	cfg.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
	cfg.EncodeDuration = zapcore.StringDurationEncoder
	cfg.EncodeLevel = withTrace(zapcore.CapitalLevelEncoder, "TRACE")
	if color {
		// Trace in debug's colour, magenta.
		cfg.EncodeLevel = withTrace(zapcore.CapitalColorLevelEncoder, "\x1b[35mTRACE\x1b[0m")
	}
	return cfg
}

// withTrace names TraceLevel, which zap's encoders print as "Level(-2)".
func withTrace(enc zapcore.LevelEncoder, name string) zapcore.LevelEncoder {
	return func(l zapcore.Level, pae zapcore.PrimitiveArrayEncoder) {
		if l == TraceLevel {
			pae.AppendString(name)
			return
		}
		enc(l, pae)
	}
}
