package logs

import (
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"
)

// The JSON format is pino's line format, as Watt prints it, so that
// pino-pretty, log shippers' pino parsers and queries written for Watt
// read wattd's output unchanged:
//
//	{"level":30,"time":1700000000000,"name":"api","msg":"…","worker":0,"pid":4242,"hostname":"h",…}
//
// level is pino's number (10 trace … 60 fatal), time epoch milliseconds,
// pid and hostname are on every line. Watt names an application's lines
// with its id in "name" and the worker index in "worker", and a line a
// worker printed as plain text has "caller": "STDOUT" or "STDERR"; wattd
// uses the same names. pid is the worker process's own, since wattd's
// workers are processes rather than threads of one. wattd's own entries
// that are not about an application are named after the component
// ("runtime", "admin", …).

// pinoNumber is pino's number for a zap level.
func pinoNumber(l zapcore.Level) int64 {
	switch {
	case l <= TraceLevel:
		return 10
	case l == zapcore.DebugLevel:
		return 20
	case l == zapcore.InfoLevel:
		return 30
	case l == zapcore.WarnLevel:
		return 40
	case l == zapcore.ErrorLevel, l == zapcore.DPanicLevel:
		return 50
	default:
		return 60
	}
}

func pinoEncoderConfig() zapcore.EncoderConfig {
	return zapcore.EncoderConfig{
		LevelKey:      "level",
		TimeKey:       "time",
		NameKey:       "name",
		MessageKey:    "msg",
		StacktraceKey: "stack",
		LineEnding:    zapcore.DefaultLineEnding,
		EncodeLevel: func(l zapcore.Level, enc zapcore.PrimitiveArrayEncoder) {
			enc.AppendInt64(pinoNumber(l))
		},
		EncodeTime: func(t time.Time, enc zapcore.PrimitiveArrayEncoder) {
			enc.AppendInt64(t.UnixMilli())
		},
		EncodeDuration: zapcore.MillisDurationEncoder,
		EncodeName:     zapcore.FullNameEncoder,
	}
}

// Field names wattd's loggers use, and what the pino format calls them.
const (
	appKey    = "app"
	workerKey = "worker"
	pidKey    = "pid"
	streamKey = "stream"
	hostKey   = "hostname"
	callerKey = "caller"
)

var (
	selfPID      = int64(os.Getpid())
	selfHostname = func() string { h, _ := os.Hostname(); return h }()
)

// pinoEncoder is zap's JSON encoder with Watt's names: the app field
// becomes the entry's name, stream becomes caller, and pid and hostname
// are added unless a field gives them (a worker's pid, a worker line's own
// hostname).
type pinoEncoder struct {
	zapcore.Encoder
	app      string // from With; "" when the logger is not an app's
	pid      int64  // from With; 0 means wattd's own
	hostname string // from With; "" means this host's
}

func newPinoEncoder() *pinoEncoder {
	return &pinoEncoder{Encoder: zapcore.NewJSONEncoder(pinoEncoderConfig())}
}

func (e *pinoEncoder) Clone() zapcore.Encoder {
	c := *e
	c.Encoder = e.Encoder.Clone()
	return &c
}

func (e *pinoEncoder) AddString(key, value string) {
	switch key {
	case appKey:
		e.app = value
	case hostKey:
		e.hostname = value
	case streamKey:
		e.Encoder.AddString(callerKey, callerOf(value))
	default:
		e.Encoder.AddString(key, value)
	}
}

func (e *pinoEncoder) AddInt64(key string, value int64) {
	if key == pidKey {
		e.pid = value
		return
	}
	e.Encoder.AddInt64(key, value)
}

func (e *pinoEncoder) AddInt(key string, value int) { e.AddInt64(key, int64(value)) }

// fieldSlices recycles EncodeEntry's field lists: one per entry would be
// most of the encoder's garbage.
var fieldSlices = sync.Pool{New: func() any { s := make([]zapcore.Field, 0, 16); return &s }}

// callerOf is Watt's caller for a stream name.
func callerOf(stream string) string {
	switch stream {
	case "stdout":
		return "STDOUT"
	case "stderr":
		return "STDERR"
	}
	return strings.ToUpper(stream)
}

func (e *pinoEncoder) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	app, pid, host := e.app, e.pid, e.hostname
	sp := fieldSlices.Get().(*[]zapcore.Field)
	out := (*sp)[:0]
	defer func() {
		clear(out)
		*sp = out[:0]
		fieldSlices.Put(sp)
	}()
	for _, f := range fields {
		switch {
		case f.Key == appKey && f.Type == zapcore.StringType:
			app = f.String
		case f.Key == pidKey && isInt(f.Type):
			pid = f.Integer
		case f.Key == hostKey && f.Type == zapcore.StringType:
			host = f.String
		case f.Key == streamKey && f.Type == zapcore.StringType:
			out = append(out, zap.String(callerKey, callerOf(f.String)))
		default:
			out = append(out, f)
		}
	}
	if app != "" {
		ent.LoggerName = app
	}
	if pid == 0 {
		pid = selfPID
	}
	if host == "" {
		host = selfHostname
	}
	out = append(out, zap.Int64(pidKey, pid), zap.String(hostKey, host))
	return e.Encoder.EncodeEntry(ent, out)
}

func isInt(t zapcore.FieldType) bool {
	switch t {
	case zapcore.Int64Type, zapcore.Int32Type, zapcore.Int16Type, zapcore.Int8Type,
		zapcore.Uint64Type, zapcore.Uint32Type, zapcore.Uint16Type, zapcore.Uint8Type:
		return true
	}
	return false
}
