package logs

import (
	"regexp"
	"strings"

	"go.uber.org/zap/zapcore"
)

// goLogLine reads a plain stderr line written by Go's standard logger
// (package log, and log/slog's default handler, which writes through it):
// "2006/01/02 15:04:05 msg", the time possibly with microseconds, and from
// slog a level word after it ("… INFO msg k=v", "… WARN+2 …"). Go programs
// log there as a matter of course, so such a line is not an error by being
// on stderr: its level is slog's word when it has one, or a level in
// brackets (nginx's error log has the same time: "… [error] 7#7: …"),
// else info. msg is
// the text after the time (and after slog's word, which is the handler's
// level field), wattd giving the entry its own time. ok is false for any other line, which keeps stderr's level.
func goLogLine(text string) (lvl zapcore.Level, msg string, ok bool) {
	rest, ok := cutGoLogTime(text)
	if !ok {
		return 0, "", false
	}
	word, after, _ := strings.Cut(rest, " ")
	if len(word) > 2 && word[0] == '[' && word[len(word)-1] == ']' {
		// nginx's error log, and Go programs that write their level so:
		// "2006/01/02 15:04:05 [error] 7#7: …", "[WARN]".
		if l, ok := pinoLevel(word[1 : len(word)-1]); ok {
			return l, rest, true
		}
	}
	base := strings.TrimRightFunc(word, func(r rune) bool { return r >= '0' && r <= '9' })
	if n := len(base); n < len(word) && n > 0 && (base[n-1] == '+' || base[n-1] == '-') {
		base = base[:n-1]
	} else if n < len(word) {
		base = word // digits not after a sign: not a level
	}
	switch base {
	case "DEBUG":
		return zapcore.DebugLevel, after, true
	case "INFO":
		return zapcore.InfoLevel, after, true
	case "WARN":
		return zapcore.WarnLevel, after, true
	case "ERROR":
		return zapcore.ErrorLevel, after, true
	}
	if lvl, ok := markedLevel(rest); ok {
		return lvl, rest, true
	}
	return zapcore.InfoLevel, rest, true
}

// goFileLine matches the file and line log.Lshortfile and log.Llongfile
// put before the message.
var goFileLine = regexp.MustCompile(`^\S+\.go:\d+: `)

// markedLevel reads the level a message of log names itself by its first
// word, the way programs mark their errors and warnings with the standard
// logger ("ERROR: …", "[ERR] …", "error: …", log.New's prefix with
// Lmsgprefix, "fatal: …" before log.Fatal): such a line stays an error, or
// becomes a warning, rather than being taken for info (and dropped by a
// logger level of warn). Only error and warn are read, so a line is never
// logged lower than info.
func markedLevel(msg string) (zapcore.Level, bool) {
	msg = goFileLine.ReplaceAllString(msg, "")
	var word string
	if rest, ok := strings.CutPrefix(msg, "["); ok {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return 0, false
		}
		word = rest[:end]
	} else {
		end := strings.IndexAny(msg, ": ")
		if end < 0 {
			end = len(msg)
		}
		word = msg[:end]
	}
	switch strings.ToUpper(word) {
	case "ERROR", "ERR", "FATAL", "PANIC", "CRITICAL", "CRIT", "EMERG", "ALERT", "SEVERE":
		return zapcore.ErrorLevel, true
	case "WARN", "WARNING":
		return zapcore.WarnLevel, true
	}
	return 0, false
}

// cutGoLogTime cuts "2006/01/02 15:04:05 " or "2006/01/02
// 15:04:05.000000 " off the start of text.
func cutGoLogTime(text string) (string, bool) {
	const layout = "dddd/dd/dd dd:dd:dd"
	if len(text) < len(layout)+1 {
		return "", false
	}
	for i := 0; i < len(layout); i++ {
		c := text[i]
		if layout[i] == 'd' {
			if c < '0' || c > '9' {
				return "", false
			}
		} else if c != layout[i] {
			return "", false
		}
	}
	i := len(layout)
	if text[i] == '.' {
		j := i + 1
		for j < len(text) && text[j] >= '0' && text[j] <= '9' {
			j++
		}
		if j-i-1 != 6 {
			return "", false
		}
		i = j
	}
	if i >= len(text) || text[i] != ' ' {
		return "", false
	}
	return text[i+1:], true
}
