package telemetry

import (
	"fmt"

	"github.com/go-logr/logr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// diagSink is the logr sink the OpenTelemetry Go SDK logs its own
// diagnostics to (otel.SetLogger) when watt.json's telemetry has
// "diagLogger": true, as Watt sends the JavaScript SDK's to the
// application's logger. The SDK logs warnings at verbosity 1, information
// at 4 and debugging at 8; they become wattd's warn, info and debug
// lines, shown as wattd's log level allows.
type diagSink struct {
	log *zap.Logger
}

func (d diagSink) level(v int) zapcore.Level {
	switch {
	case v <= 1:
		return zapcore.WarnLevel
	case v <= 4:
		return zapcore.InfoLevel
	}
	return zapcore.DebugLevel
}

func (d diagSink) Init(logr.RuntimeInfo) {}

func (d diagSink) Enabled(v int) bool { return d.log.Core().Enabled(d.level(v)) }

func (d diagSink) Info(v int, msg string, kv ...any) {
	if ce := d.log.Check(d.level(v), msg); ce != nil {
		ce.Write(fields(kv)...)
	}
}

func (d diagSink) Error(err error, msg string, kv ...any) {
	d.log.Error(msg, append(fields(kv), zap.Error(err))...)
}

func (d diagSink) WithValues(kv ...any) logr.LogSink { return diagSink{d.log.With(fields(kv)...)} }

func (d diagSink) WithName(name string) logr.LogSink { return diagSink{d.log.Named(name)} }

// fields turns logr's key, value pairs into zap fields; an odd one out is
// kept under "extra".
func fields(kv []any) []zap.Field {
	out := make([]zap.Field, 0, (len(kv)+1)/2)
	for i := 0; i < len(kv); i += 2 {
		if i+1 == len(kv) {
			out = append(out, zap.Any("extra", kv[i]))
			break
		}
		out = append(out, zap.Any(fmt.Sprint(kv[i]), kv[i+1]))
	}
	return out
}
