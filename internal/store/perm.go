package store

import (
	"fmt"
	"io/fs"
)

// Exposed is a state path that group or others can reach: the state
// directory, or a file in it that holds a key or the key store.
type Exposed struct {
	Path string
	Mode fs.FileMode // the permission bits found
	Fix  string      // the command that closes it, e.g. "chmod 600 /var/lib/stellwerk/hash.key"
}

// Octal is the mode as ls and chmod write it, e.g. "0644".
func (e Exposed) Octal() string { return fmt.Sprintf("%04o", e.Mode.Perm()) }
