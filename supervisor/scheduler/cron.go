package scheduler

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Schedule is a parsed cron expression, read as Watt reads its
// scheduler's: five fields (minute, hour, day of month, month, day of
// week) or six with the seconds first; "*", numbers, ranges "a-b", steps
// "*/n", "a/n" (from a to the field's end) and "a-b/n", lists; month
// names jan…dec and day names sun…sat; day of week 0–7 (0 and 7 are
// Sunday); the presets @yearly, @monthly, @weekly, @daily, @hourly,
// @minutely, @secondly, @weekdays and @weekends. When both the day of
// month and the day of week are restricted, a day that matches either
// one matches. Times are UTC.
type Schedule struct {
	second, minute, hour, dom, month, dow uint64 // bit i: value i allowed
	domAll, dowAll                        bool   // the field allows every day
}

var presets = map[string]string{
	"@yearly":   "0 0 0 1 1 *",
	"@monthly":  "0 0 0 1 * *",
	"@weekly":   "0 0 0 * * 0",
	"@daily":    "0 0 0 * * *",
	"@hourly":   "0 0 * * * *",
	"@minutely": "0 * * * * *",
	"@secondly": "* * * * * *",
	"@weekdays": "0 0 0 * * 1-5",
	"@weekends": "0 0 0 * * 0,6",
}

var names = map[string]int{
	"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
	"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
}

var (
	nameRE  = regexp.MustCompile(`[a-z]{1,3}`)
	rangeRE = regexp.MustCompile(`^(\d+)(?:-(\d+))?(?:/(\d+))?$`)
)

type field struct {
	name      string
	low, high int
}

var fields = []field{{"second", 0, 59}, {"minute", 0, 59}, {"hour", 0, 23}, {"day of month", 1, 31}, {"month", 1, 12}, {"day of week", 0, 7}}

// Parse reads expr, or says what is wrong with it.
func Parse(expr string) (*Schedule, error) {
	src := strings.ToLower(strings.TrimSpace(expr))
	if p, ok := presets[src]; ok {
		src = p
	} else if strings.HasPrefix(src, "@") {
		return nil, fmt.Errorf("unknown preset %q (known: @yearly, @monthly, @weekly, @daily, @hourly, @minutely, @secondly, @weekdays, @weekends)", expr)
	}
	var bad error
	src = nameRE.ReplaceAllStringFunc(src, func(n string) string {
		v, ok := names[n]
		if !ok && bad == nil {
			bad = fmt.Errorf("unknown name %q (months jan…dec, days sun…sat)", n)
		}
		return strconv.Itoa(v)
	})
	if bad != nil {
		return nil, bad
	}
	parts := strings.Fields(src)
	switch {
	case len(parts) < 5:
		return nil, errors.New("too few fields: want 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)")
	case len(parts) > 6:
		return nil, errors.New("too many fields: want 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)")
	case len(parts) == 5:
		parts = append([]string{"0"}, parts...)
	}
	var s Schedule
	dst := []*uint64{&s.second, &s.minute, &s.hour, &s.dom, &s.month, &s.dow}
	for i, f := range fields {
		bits, err := parseField(parts[i], f)
		if err != nil {
			return nil, err
		}
		*dst[i] = bits
	}
	if s.dow&(1<<7) != 0 { // 7 is Sunday too
		s.dow = s.dow&^(1<<7) | 1
	}
	s.domAll = s.dom == span(1, 31)
	s.dowAll = s.dow == span(0, 6)
	return &s, nil
}

func span(low, high int) uint64 {
	var b uint64
	for i := low; i <= high; i++ {
		b |= 1 << i
	}
	return b
}

func parseField(value string, f field) (uint64, error) {
	for _, part := range strings.Split(value, ",") {
		if i := strings.IndexByte(part, '*'); i > 0 {
			return 0, fmt.Errorf("%s field %q: a * must come first", f.name, part)
		}
	}
	value = strings.ReplaceAll(value, "*", fmt.Sprintf("%d-%d", f.low, f.high))
	var bits uint64
	for _, part := range strings.Split(value, ",") {
		m := rangeRE.FindStringSubmatch(part)
		if m == nil {
			return 0, fmt.Errorf("%s field %q: not a number, range or step", f.name, part)
		}
		lower, _ := strconv.Atoi(m[1])
		upper, step := lower, 1
		if m[3] != "" {
			step, _ = strconv.Atoi(m[3])
			if step == 0 {
				return 0, fmt.Errorf("%s field %q: a step of zero", f.name, part)
			}
			upper = f.high
		}
		if m[2] != "" {
			upper, _ = strconv.Atoi(m[2])
			if lower > upper {
				return 0, fmt.Errorf("%s field %q: the range ends before it starts", f.name, part)
			}
		}
		if lower < f.low || upper > f.high {
			return 0, fmt.Errorf("%s field %q: out of range %d-%d", f.name, part, f.low, f.high)
		}
		for v := lower; v <= upper; v += step {
			bits |= 1 << v
		}
	}
	return bits, nil
}

// Next is the first time after t, to the second, that the schedule
// allows, in UTC; the zero time when there is none within eight years (a
// 30th of February).
func (s *Schedule) Next(t time.Time) time.Time {
	t = t.UTC().Truncate(time.Second).Add(time.Second)
	end := t.AddDate(8, 0, 0)
	for t.Before(end) {
		switch {
		case s.month&(1<<int(t.Month())) == 0:
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		case !s.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
		case s.hour&(1<<t.Hour()) == 0:
			t = t.Truncate(time.Hour).Add(time.Hour)
		case s.minute&(1<<t.Minute()) == 0:
			t = t.Truncate(time.Minute).Add(time.Minute)
		case s.second&(1<<t.Second()) == 0:
			t = t.Add(time.Second)
		default:
			return t
		}
	}
	return time.Time{}
}

// dayMatches: a restricted day of month or day of week must match; with
// both restricted, either one is enough.
func (s *Schedule) dayMatches(t time.Time) bool {
	dom := s.dom&(1<<t.Day()) != 0
	dow := s.dow&(1<<int(t.Weekday())) != 0
	switch {
	case s.domAll && s.dowAll:
		return true
	case s.domAll:
		return dow
	case s.dowAll:
		return dom
	}
	return dom || dow
}
