package logs

import (
	"encoding/json"
	"errors"
	"io"
	"strconv"
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
var ownKeys = func() map[string]*clash {
	m := map[string]*clash{}
	for _, k := range []string{
		"app", "worker", "pid", "stream", "truncated", "name", "hostname",
		"logger", "caller", "stacktrace", "time", "level", "msg",
	} {
		m[k] = &clash{key: k, renamed: clashPrefix + k}
	}
	return m
}()

const clashPrefix = "worker."

// clash is a worker member renamed away from one of wattd's keys. Its field
// keeps the original key, so that redact paths written for the app's
// record (pino's view of it) still reach the member (see renamedFrom).
type clash struct {
	key     string // the member's key in the record
	renamed string // the key it is logged under when nothing else has it
}

// renamedField is the field of a renamed member. zap's encoders read one
// member of a Field per type: String for strings, Integer for numbers and
// booleans, Interface for reflected values. The original key goes where
// the encoders do not look: the clash itself in Interface, or its key in
// String for a reflected value. The entries are static, so marking a field
// allocates nothing.
func renamedField(key string, c *clash, val any) zap.Field {
	f := fieldOf(key, val)
	if f.Type == zapcore.ReflectType {
		f.String = c.key
	} else {
		f.Interface = c
	}
	return f
}

// renamedFrom gives the key a field's member had in the worker's record
// when parseRecord renamed it, and false for every other field.
func renamedFrom(f zapcore.Field) (string, bool) {
	if f.Type == zapcore.ReflectType {
		// zap's constructors leave String empty for reflected values.
		if f.String != "" && strings.HasPrefix(f.Key, clashPrefix) {
			return f.String, true
		}
		return "", false
	}
	if c, ok := f.Interface.(*clash); ok {
		return c.key, true
	}
	return "", false
}

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
	var members memberList
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
			members.set(key, val)
		case "level":
			levelValue = val
			members.set(key, val)
		case "time":
			timeValue = val
			members.set(key, val)
		default:
			members.set(key, val)
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
	rec.fields = make([]zap.Field, 0, len(members.list))
	for _, m := range members.list {
		if useAlt && m.key == "message" {
			continue
		}
		if rec.hasLevel && droppedKeys[m.key] {
			continue
		}
		c := ownKeys[m.key]
		if c == nil {
			rec.fields = append(rec.fields, fieldOf(m.key, m.val))
			continue
		}
		// The record may have a member of its own called worker.name: it
		// keeps that key, since it is the app's name for it and clashes with
		// nothing of wattd's, and the renamed member moves one prefix
		// further (worker.worker.name), so that neither is lost and each
		// key is written once.
		key := c.renamed
		for members.has(key) {
			key = clashPrefix + key
		}
		rec.fields = append(rec.fields, renamedField(key, c, m.val))
	}
	return rec, true
}

type member struct {
	key string
	val any
}

// memberList is a record's members in their order, one per key. An
// object with a key twice is valid JSON, but a strict consumer of wattd's
// output may reject it or keep either value; as with JSON.parse, which is
// what the app's own reader of the line would use, the last value wins,
// in the place of the first.
type memberList struct {
	list []member
	// index is built once the list is long enough for a scan per member
	// to cost more than the map; records usually have a dozen members.
	index map[string]int
}

const scanMembers = 32

func (ms *memberList) find(key string) int {
	if ms.index != nil {
		if i, ok := ms.index[key]; ok {
			return i
		}
		return -1
	}
	for i := range ms.list {
		if ms.list[i].key == key {
			return i
		}
	}
	return -1
}

func (ms *memberList) has(key string) bool { return ms.find(key) >= 0 }

func (ms *memberList) set(key string, val any) {
	if i := ms.find(key); i >= 0 {
		ms.list[i].val = val
		return
	}
	ms.list = append(ms.list, member{key, val})
	switch {
	case ms.index != nil:
		ms.index[key] = len(ms.list) - 1
	case len(ms.list) > scanMembers:
		ms.index = make(map[string]int, 2*len(ms.list))
		for i, m := range ms.list {
			ms.index[m.key] = i
		}
	}
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
		// A float is a Float64 field only when zap writes it back as the
		// worker wrote it (1.25, not 1e-7 or 1.50): the number must leave
		// wattd as it came.
		if f, err := strconv.ParseFloat(string(v), 64); err == nil {
			var b [32]byte
			if string(strconv.AppendFloat(b[:0], f, 'f', -1, 64)) == string(v) {
				return zap.Float64(key, f)
			}
		}
		// Anything else, an integer beyond int64 (a uint64 id) or a number
		// float64 would round, is written as its literal text, which is
		// valid JSON already: encoding/json copies a json.Number unchanged.
		// Not zap.Any, which would quote it as a Stringer.
		return zap.Reflect(key, v)
	}
	// Objects, arrays and null keep their shape; encoding/json renders the
	// nested json.Numbers exactly.
	return zap.Any(key, v)
}
