package rollout

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule says when a rollout may take its next step forward.
type Schedule interface {
	// Next returns the first activation strictly after t.
	Next(t time.Time) time.Time
}

var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// NewSchedule parses a robfig/cron expression (seconds optional; descriptors such as
// "@hourly" and "@every 30s" accepted) in the named time zone (empty: UTC).
func NewSchedule(expr, zone string) (Schedule, error) {
	loc := time.UTC
	if zone != "" {
		l, err := time.LoadLocation(zone)
		if err != nil {
			return nil, fmt.Errorf("unknown time zone %q", zone)
		}
		loc = l
	}
	if strings.TrimSpace(expr) == "" {
		return nil, fmt.Errorf("is required: a cron expression such as \"*/10 * * * *\" or \"@every 30s\"")
	}
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		return nil, fmt.Errorf("set the time zone with timeZone, not inside the expression")
	}
	if err := checkSteps(expr); err != nil {
		return nil, err
	}
	s, err := cronParser.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("%q is not a cron expression: %v", expr, err)
	}
	return zoned{s, loc}, nil
}

type zoned struct {
	s   cron.Schedule
	loc *time.Location
}

func (z zoned) Next(t time.Time) time.Time {
	return z.s.Next(t.In(z.loc)).In(t.Location())
}

type cronField struct {
	name     string
	min, max int
}

var (
	fields5 = []cronField{{"minute", 0, 59}, {"hour", 0, 23}, {"day of month", 1, 31}, {"month", 1, 12}, {"day of week", 0, 6}}
	fields6 = append([]cronField{{"second", 0, 59}}, fields5...)
)

// checkSteps rejects a step larger than its field's range, such as "*/61" for minutes, which
// robfig/cron accepts but which can only mean a typo.
func checkSteps(expr string) error {
	if strings.HasPrefix(expr, "@") {
		return nil
	}
	parts := strings.Fields(expr)
	var fields []cronField
	switch len(parts) {
	case 5:
		fields = fields5
	case 6:
		fields = fields6
	default:
		return nil // the parser explains
	}
	for i, part := range parts {
		f := fields[i]
		for _, item := range strings.Split(part, ",") {
			_, stepText, ok := strings.Cut(item, "/")
			if !ok {
				continue
			}
			step, err := strconv.Atoi(stepText)
			if err != nil {
				continue // the parser explains
			}
			if span := f.max - f.min; step > span {
				return fmt.Errorf("%q: %s step %d is larger than the range %d-%d", expr, f.name, step, f.min, f.max)
			}
		}
	}
	return nil
}
