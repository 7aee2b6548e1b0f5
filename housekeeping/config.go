package housekeeping

import (
	"time"

	units "github.com/docker/go-units"
	"gopkg.in/yaml.v3"

	"github.com/berth-dev/berth/api"
)

// Config is the housekeeping section of berth's configuration.
type Config struct {
	// KeepRevisions is how many of each service's newest revisions keep
	// their images for a rollback (default 5).
	KeepRevisions int `yaml:"keep_revisions"`
	// Interval is how often the disk is checked (default 5m).
	Interval time.Duration `yaml:"interval"`
	// DiskThreshold is the share of the engine's file system, in percent,
	// above which a collection runs by itself (default 85; 0 takes the
	// default, -1 turns automatic collection off).
	DiskThreshold int `yaml:"disk_threshold"`
	// Budget bounds the disk berth's own objects may take ("20GB");
	// above it a collection runs and, if that is not enough, the
	// disk_over_budget alert fires. Empty: no budget.
	Budget Bytes `yaml:"budget"`
	// BuildCacheMaxAge, when set, also prunes build cache unused for that
	// long. Build cache carries no labels, so this is the engine's whole
	// cache (it only costs rebuild time): it is off by default.
	BuildCacheMaxAge time.Duration `yaml:"build_cache_max_age"`
	// DanglingMinAge is how old an untagged image berth built must be
	// before it is collected (default 10m): a build in progress commits
	// untagged images step by step, and collecting one under it fails
	// the build.
	DanglingMinAge time.Duration `yaml:"dangling_min_age"`
}

// Defaults.
const (
	DefaultKeepRevisions  = 5
	DefaultInterval       = 5 * time.Minute
	DefaultDiskThreshold  = 85
	DefaultDanglingMinAge = 10 * time.Minute
)

func (c Config) withDefaults() Config {
	if c.KeepRevisions <= 0 {
		c.KeepRevisions = DefaultKeepRevisions
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.DiskThreshold == 0 {
		c.DiskThreshold = DefaultDiskThreshold
	}
	if c.DanglingMinAge <= 0 {
		c.DanglingMinAge = DefaultDanglingMinAge
	}
	return c
}

// Validate checks the section as a user wrote it.
func (c Config) Validate() error {
	switch {
	case c.KeepRevisions < 0:
		return api.Invalidf("housekeeping.keep_revisions %d: use 1 or more", c.KeepRevisions)
	case c.DiskThreshold < -1 || c.DiskThreshold > 100:
		return api.Invalidf("housekeeping.disk_threshold %d: use a percentage from 1 to 100 (or -1 for off)", c.DiskThreshold)
	case c.Interval < 0 || c.BuildCacheMaxAge < 0 || c.Budget < 0 || c.DanglingMinAge < 0:
		return api.Invalidf("housekeeping: interval, budget and build_cache_max_age must not be negative")
	}
	return nil
}

// Bytes is a size written as Docker users write them ("20GB", "512m").
type Bytes int64

// UnmarshalYAML reads a human size or a number of bytes.
func (b *Bytes) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := units.RAMInBytes(s)
	if err != nil {
		return api.Invalidf("size %q (line %d): use a size like 20GB or 512m", s, n.Line)
	}
	*b = Bytes(v)
	return nil
}
