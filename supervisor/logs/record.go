package logs

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// droppedKeys are pino's envelope members: wattd's entry carries the
// record's time, level and message in its own envelope, adds the worker's
// pid and the hostname, and the format version is the same for every
// line. They are dropped from records with a level only; any other JSON
// object is kept whole.
var droppedKeys = map[string]bool{
	"time": true, "pid": true, "hostname": true, "level": true, "msg": true, "v": true,
}

// ownKeys are the keys wattd's entries already carry, from the worker
// logger's fields, the Sink's own fields and the encoders' envelope. A
// worker member with one of these names is renamed rather than allowed to
// shadow or duplicate ours.
var ownKeys = map[string]bool{
	"app": true, "worker": true, "pid": true, "stream": true, "truncated": true, "name": true, "hostname": true,
	"logger": true, "caller": true, "stacktrace": true, "time": true, "level": true, "msg": true,
}

const clashPrefix = "worker."

// record is a structured worker line decoded into zap terms.
type record struct {
	level    zapcore.Level
	hasLevel bool
	msg      string
	fields   []zap.Field
	at       time.Time // the record's own time; zero when it has none
}

// parseRecord decodes a line that is a single JSON object. Anything else,
// including an object followed by more text, is not a record and is logged
// verbatim.
func parseRecord(text string) (record, bool) {
	t := strings.TrimSpace(text)
	if len(t) < 2 || t[0] != '{' || t[len(t)-1] != '}' {
		return record{}, false
	}
	dec := json.NewDecoder(strings.NewReader(t))
	// Numbers stay exact: ids and nanosecond timings overflow float64.
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return record{}, false
	}
	var (
		rec        record
		msg, alt   any
		hasMsg     bool
		hasAlt     bool
		levelValue any
		timeValue  any
	)
	type member struct {
		key string
		val any
	}
	var members []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return record{}, false
		}
		key, ok := tok.(string)
		if !ok {
			return record{}, false
		}
		var val any
		if err := dec.Decode(&val); err != nil {
			return record{}, false
		}
		switch key {
		case "msg":
			msg, hasMsg = val, true
		case "message":
			alt, hasAlt = val, true
			members = append(members, member{key, val})
		case "level":
			levelValue = val
			members = append(members, member{key, val})
		case "time":
			timeValue = val
			members = append(members, member{key, val})
		default:
			members = append(members, member{key, val})
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return record{}, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return record{}, false
	}

	// "message" is only the message when there is no "msg"; otherwise it is
	// an ordinary member.
	useAlt := !hasMsg && hasAlt
	switch {
	case hasMsg:
		rec.msg = textOf(msg)
	case useAlt:
		rec.msg = textOf(alt)
	}
	rec.level, rec.hasLevel = pinoLevel(levelValue)
	if rec.hasLevel {
		rec.at = timeOf(timeValue)
	}
	rec.fields = make([]zap.Field, 0, len(members))
	for _, m := range members {
		if useAlt && m.key == "message" {
			continue
		}
		if rec.hasLevel && droppedKeys[m.key] {
			continue
		}
		key := m.key
		if ownKeys[key] {
			key = clashPrefix + key
		}
		rec.fields = append(rec.fields, fieldOf(key, m.val))
	}
	return rec, true
}

// pinoLevel maps pino's numeric levels (10 trace, 20 debug, 30 info, 40
// warn, 50 error, 60 fatal; custom levels in between round down) and the
// usual level names onto wattd's levels, trace and fatal included. The
// Sink writes a worker's fatal entry without ending wattd.
func pinoLevel(v any) (zapcore.Level, bool) {
	switch v := v.(type) {
	case json.Number:
		n, err := v.Float64()
		if err != nil {
			return 0, false
		}
		switch {
		case n < 20:
			return TraceLevel, true
		case n < 30:
			return zapcore.DebugLevel, true
		case n < 40:
			return zapcore.InfoLevel, true
		case n < 50:
			return zapcore.WarnLevel, true
		case n < 60:
			return zapcore.ErrorLevel, true
		default:
			return zapcore.FatalLevel, true
		}
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "trace", "silly":
			return TraceLevel, true
		case "debug", "verbose":
			return zapcore.DebugLevel, true
		case "info", "notice", "log":
			return zapcore.InfoLevel, true
		case "warn", "warning":
			return zapcore.WarnLevel, true
		case "error", "err":
			return zapcore.ErrorLevel, true
		case "fatal", "panic", "critical", "crit", "alert", "emerg", "emergency":
			return zapcore.FatalLevel, true
		}
	}
	return 0, false
}

// timeOf reads pino's time: epoch milliseconds (the default), epoch
// seconds (unixTime) or an ISO string (isoTime). Anything else, or a time
// far from now, gives zero and the line's arrival time is used.
func timeOf(v any) time.Time {
	var t time.Time
	switch v := v.(type) {
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return time.Time{}
		}
		if f < 1e11 { // seconds: 1e11 ms is 1973, 1e11 s the year 5138
			f *= 1000
		}
		t = time.UnixMilli(int64(f))
	case string:
		var err error
		if t, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return time.Time{}
		}
	default:
		return time.Time{}
	}
	if d := time.Since(t); d > 24*time.Hour || d < -24*time.Hour {
		return time.Time{}
	}
	return t
}

func textOf(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

func fieldOf(key string, v any) zap.Field {
	switch v := v.(type) {
	case string:
		return zap.String(key, v)
	case bool:
		return zap.Bool(key, v)
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return zap.Int64(key, i)
		}
		if f, err := v.Float64(); err == nil {
			return zap.Float64(key, f)
		}
		return zap.String(key, v.String())
	}
	// Objects, arrays and null keep their shape; encoding/json renders the
	// nested json.Numbers exactly.
	return zap.Any(key, v)
}
