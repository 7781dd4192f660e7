package main

import (
	"time"

	"github.com/aimwan/aimwan/aimsrc"
)

// srcSchedule is one entry of schedules: in src's YAML file.
type srcSchedule struct {
	Volume string `yaml:"volume"` // exactly one of volume and group
	Group  string `yaml:"group"`
	Every  string `yaml:"every"`  // e.g. 15m
	Prefix string `yaml:"prefix"` // label prefix (default auto)
}

// srcSchedules fills the scheduled snapshot markers: --schedule flags
// replace the YAML list.
func srcSchedules(cfg *aimsrc.Config, yml []srcSchedule, flags multiFlag) error {
	if len(flags) > 0 {
		for _, s := range flags {
			sc, err := aimsrc.ParseSchedule(s)
			if err != nil {
				return usagef("%v", err)
			}
			cfg.Schedules = append(cfg.Schedules, sc)
		}
		return nil
	}
	for _, s := range yml {
		every, err := time.ParseDuration(s.Every)
		if err != nil {
			return usagef("src: schedules: every %q: want a duration such as 15m", s.Every)
		}
		cfg.Schedules = append(cfg.Schedules, aimsrc.ScheduleConfig{Volume: s.Volume, Group: s.Group, Every: every, Prefix: s.Prefix})
	}
	return nil
}
