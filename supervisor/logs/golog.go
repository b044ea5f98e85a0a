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
//
// log.New's prefix (log.SetPrefix) comes before the time unless the flags
// have Lmsgprefix: "WARNING: 2006/01/02 15:04:05 msg", the pattern of a
// logger per level. A prefix of one word that marks a level ("WARNING: ",
// "[ERROR] ", see markedLevel) gives the line that level when the message
// names none; the message keeps the prefix.
func goLogLine(text string) (lvl zapcore.Level, msg string, ok bool) {
	prefix, rest, ok := cutGoLogStart(text)
	if !ok {
		return 0, "", false
	}
	lvl, msg, named := goLogLevel(rest)
	if prefix == "" {
		return lvl, msg, true
	}
	if !named {
		if l, ok := markedLevel(prefix); ok {
			lvl = l
		}
	}
	return lvl, prefix + msg, true
}

// goLogLevel is goLogLine's reading of the text after the time; named
// tells whether the text names its level (else it is info).
func goLogLevel(rest string) (lvl zapcore.Level, msg string, named bool) {
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
	return zapcore.InfoLevel, rest, false
}

// maxGoLogPrefix bounds the prefix read before the time: one word, as a
// per-level logger's prefix is, so that a line that only mentions a time
// further on is not taken for one of Go's logger.
const maxGoLogPrefix = 24

// cutGoLogStart cuts the start of a line of Go's standard logger off
// text: an optional prefix of one word (log.SetPrefix without
// Lmsgprefix) and the time; prefix is as written, rest follows the time.
func cutGoLogStart(text string) (prefix, rest string, ok bool) {
	if rest, ok := cutGoLogTime(text); ok {
		return "", rest, true
	}
	for i := 1; i <= maxGoLogPrefix && i < len(text); i++ {
		if text[i] < '0' || text[i] > '9' || text[i-1] >= '0' && text[i-1] <= '9' {
			continue
		}
		rest, ok := cutGoLogTime(text[i:])
		if !ok {
			continue
		}
		word := strings.TrimRight(text[:i], " ")
		if word == "" || strings.ContainsAny(word, " \t") {
			return "", "", false
		}
		return text[:i], rest, true
	}
	return "", "", false
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
