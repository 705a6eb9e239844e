//go:build !unix

package store

// ExposedState reports nothing where file modes are not Unix permissions.
func ExposedState(dir string, files ...string) ([]Exposed, error) { return nil, nil }
