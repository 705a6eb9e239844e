package keys

import (
	"errors"
	"fmt"

	"github.com/stellwerk/stellwerk/internal/config"
)

// ErrConfigKey is an id that names a key of the config file (keys: in
// stellwerk.yaml), not one of the store: the store can neither show nor
// change it. It serves, so answering "no such key" sent an incident
// responder looking for a key that was not there (the incident probe's F7).
var ErrConfigKey = errors.New("a key of the config file")

// ConfigKeyError is ErrConfigKey for one id, saying what ends the key.
type ConfigKeyError struct{ ID string }

func (e *ConfigKeyError) Error() string {
	return fmt.Sprintf("key %q is a key of stellwerk.yaml (keys:), not of the key store, which cannot show or change it: "+
		"to end it, remove it (or its secret) from keys: in the config of every replica; each reads its file again within 2 s", e.ID)
}

// Is makes errors.Is(err, ErrConfigKey) hold.
func (e *ConfigKeyError) Is(target error) bool { return target == ErrConfigKey }

// OrConfigKey turns ErrNotFound for the id of one of c's keys into a
// ConfigKeyError; any other error (nil included) is returned as it is. A
// store key is acted on even if a config key later took its id.
func OrConfigKey(err error, c *config.Config, id string) error {
	if !errors.Is(err, ErrNotFound) || c == nil {
		return err
	}
	for _, k := range c.Keys {
		if k.ID == id {
			return &ConfigKeyError{ID: id}
		}
	}
	return err
}

// ConfigKey is a key of the config file as listings show it: who it names
// and where it comes from, never its digest or the variable holding it.
type ConfigKey struct {
	ID        string `json:"id"`
	Workspace string `json:"workspace"`
	Team      string `json:"team,omitempty"`
	User      string `json:"user,omitempty"`
	// Source is always "config".
	Source string `json:"source"`
}

// SourceConfig is the Source of a config key.
const SourceConfig = "config"

// ConfigKeys are c's keys that match f (a status filter other than
// active matches none: a config key serves while it is in the file).
func ConfigKeys(c *config.Config, f Filter) []ConfigKey {
	if c == nil || (f.Status != "" && f.Status != StatusActive) {
		return nil
	}
	var out []ConfigKey
	for _, k := range c.Keys {
		if (f.Workspace != "" && f.Workspace != k.Workspace) || (f.Team != "" && f.Team != k.Team) || (f.User != "" && f.User != k.User) {
			continue
		}
		out = append(out, ConfigKey{ID: k.ID, Workspace: k.Workspace, Team: k.Team, User: k.User, Source: SourceConfig})
	}
	return out
}
