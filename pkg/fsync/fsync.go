// Package fsync makes file replacements durable: after a rename, the
// directory itself must be synced for the new entry to survive a crash.
package fsync

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Dir syncs a directory. File systems that cannot sync directories
// (EINVAL) are not an error: there is nothing more to do on them.
func Dir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening %s to sync: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
