package logs

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// BenchmarkEntry is one worker entry through wattd's JSON logger: zap's
// own JSON encoder as the reference, pino's format, and pino's format
// with the buffer of recent lines and redaction on.
func BenchmarkEntry(b *testing.B) {
	r, _ := NewRedactor([]string{"req.headers.authorization", "secret"}, DefaultCensor)
	cases := []struct {
		name string
		core func() zapcore.Core
	}{
		{"zap-json", func() zapcore.Core {
			return zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(discard{}), zapcore.InfoLevel)
		}},
		{"pino", func() zapcore.Core { return newLineCore(zapcore.InfoLevel, zapcore.AddSync(discard{}), nil, nil) }},
		{"pino+recent+redact", func() zapcore.Core {
			return redactCore{Core: newLineCore(zapcore.InfoLevel, zapcore.AddSync(discard{}), NewRecent(RecentOptions{}), nil), r: r}
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			log := zap.New(c.core()).Named("app").With(zap.String("app", "web"), zap.Int("worker", 1), zap.Int("pid", 4242))
			b.ReportAllocs()
			for b.Loop() {
				log.Info("request completed", zap.String("stream", "stdout"), zap.String("reqId", "r-1"), zap.Int("status", 200))
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
