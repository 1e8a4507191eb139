package template

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/blinkchamber/blinkchamber/pkg/fsync"
)

// ErrNotRegular is wrapped when a directory stands where a file is to be
// written (the agent does not remove what it did not write), or when what
// is to be read is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// Files writes the files of one directory. Nothing in the directory is ever
// opened in a way that can block: entries are looked at with lstat, the
// only file opened for reading is a regular file of the expected size
// (non-blocking, not following links, checked to be the entry lstat saw),
// temporary files are created new (O_EXCL|O_NOFOLLOW) under a random name,
// and whatever other entry (a FIFO, a socket, a device node, a symlink)
// stands at a file's name is replaced by rename, never opened. Whether a
// file is unchanged is decided from what this Files last wrote there,
// remembered as a hash and the file's identity.
type Files struct {
	dir string
	mu  sync.Mutex
	// wrote is what was last written at each name.
	wrote map[string]stamp
	// tempSuffix draws a temporary file's suffix; tests replace it.
	tempSuffix func() (string, error)
}

// stamp identifies a file this Files wrote: its content's hash and what
// lstat said of it right after. Any change to the entry (replaced, written
// in place, chmod) changes the inode or the ctime.
type stamp struct {
	sum   [sha256.Size]byte
	dev   uint64
	ino   uint64
	size  int64
	mode  fs.FileMode
	ctime syscall.Timespec
}

// NewFiles writes into dir.
func NewFiles(dir string) *Files {
	return &Files{dir: dir, wrote: map[string]stamp{}, tempSuffix: randomSuffix}
}

// WriteFile replaces dir/name with data atomically, as Files.Write, for a
// caller that writes a file once.
func WriteFile(dir, name string, data []byte, perm fs.FileMode) (changed bool, err error) {
	return NewFiles(dir).Write(name, data, perm)
}

// Write replaces name with data atomically: a temporary file in the same
// directory, written, synced, given its mode, then renamed over the old
// entry, so a reader sees the old file or the new one, never a part. When
// the file already holds data with mode perm, nothing is written and
// changed is false.
func (f *Files) Write(name string, data []byte, perm fs.FileMode) (changed bool, err error) {
	if err := checkName(name); err != nil {
		return false, err
	}
	// The lock guards the record only, never a system call: a write of
	// one name stuck in the kernel does not hold up the others. Callers
	// write one name at a time.
	f.mu.Lock()
	old, known := f.wrote[name]
	f.mu.Unlock()
	target := filepath.Join(f.dir, name)
	sum := sha256.Sum256(data)
	same, seen, err := unchanged(name, target, data, perm, old, known)
	switch {
	case err != nil:
		return false, err
	case same:
		seen.sum = sum
		f.record(name, &seen)
		return false, nil
	}
	ino, err := f.replace(name, target, data, perm)
	if err != nil {
		f.record(name, nil)
		return false, err
	}
	f.record(name, written(target, sum, ino))
	return true, fsync.Dir(f.dir)
}

func (f *Files) record(name string, s *stamp) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s == nil {
		delete(f.wrote, name)
		return
	}
	f.wrote[name] = *s
}

// Intact reports whether name is still the file this Files last wrote
// there; false when it never wrote it. It only calls lstat.
func (f *Files) Intact(name string) bool {
	f.mu.Lock()
	old, ok := f.wrote[name]
	f.mu.Unlock()
	if !ok {
		return false
	}
	st, err := os.Lstat(filepath.Join(f.dir, name))
	if err != nil {
		return false
	}
	cur, ok := stampOf(st)
	return ok && sameEntry(old, cur)
}

// unchanged decides whether target already holds data with perm, and
// returns what lstat saw of it. Only lstat looks at the entry, unless
// there is no record of it (the first write after a start): then a
// regular file of exactly len(data) bytes is read, without blocking, to
// compare.
func unchanged(name, target string, data []byte, perm fs.FileMode, old stamp, known bool) (bool, stamp, error) {
	st, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return false, stamp{}, nil
	}
	if err != nil {
		return false, stamp{}, fmt.Errorf("looking at %s: %w", name, err)
	}
	if st.IsDir() {
		return false, stamp{}, fmt.Errorf("writing %s: %w: a directory is in the way", name, ErrNotRegular)
	}
	cur, ok := stampOf(st)
	if !ok || !st.Mode().IsRegular() || st.Mode().Perm() != perm || st.Size() != int64(len(data)) {
		return false, stamp{}, nil
	}
	if known {
		return sameEntry(old, cur) && old.sum == sha256.Sum256(data), cur, nil
	}
	return sameContent(target, cur, data), cur, nil
}

// sameContent reads a regular file (seen as want by lstat) and compares it
// with data. O_NONBLOCK and O_NOFOLLOW: if the entry was swapped for a FIFO
// or a link since lstat, the open neither waits nor follows, and fstat
// tells it is not the file seen; the read is bounded by len(data).
func sameContent(path string, want stamp, data []byte) bool {
	fd, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	got, ok := stampOf(st)
	if !ok || got.dev != want.dev || got.ino != want.ino {
		return false
	}
	old, err := io.ReadAll(io.LimitReader(fd, int64(len(data))+1))
	return err == nil && bytes.Equal(old, data)
}

// replace writes data to a new temporary file and renames it over target;
// it returns the new file's inode.
func (f *Files) replace(name, target string, data []byte, perm fs.FileMode) (ino uint64, err error) {
	tmp, err := f.createTemp(name, perm)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return 0, fmt.Errorf("writing %s: %w", name, err)
	}
	// The umask may have narrowed the mode at creation; set it exactly.
	if err = tmp.Chmod(perm); err != nil {
		return 0, fmt.Errorf("setting mode of %s: %w", name, err)
	}
	if err = tmp.Sync(); err != nil {
		return 0, fmt.Errorf("syncing %s: %w", name, err)
	}
	st, err := tmp.Stat()
	if err != nil {
		return 0, fmt.Errorf("looking at the temporary file of %s: %w", name, err)
	}
	s, _ := stampOf(st)
	if err = tmp.Close(); err != nil {
		return 0, fmt.Errorf("closing %s: %w", name, err)
	}
	// rename replaces any entry but a directory without opening it.
	if err = os.Rename(tmp.Name(), target); err != nil {
		if errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
			err = fmt.Errorf("replacing %s: %w: a directory is in the way", name, ErrNotRegular)
		} else {
			err = fmt.Errorf("replacing %s: %w", name, err)
		}
		return 0, err
	}
	return s.ino, nil
}

// written is what lstat says of target right after the rename, if it is
// still the file written (ino); nil otherwise.
func written(target string, sum [sha256.Size]byte, ino uint64) *stamp {
	st, err := os.Lstat(target)
	if err != nil {
		return nil
	}
	s, ok := stampOf(st)
	if !ok || s.ino != ino {
		return nil
	}
	s.sum = sum
	return &s
}

func stampOf(st fs.FileInfo) (stamp, bool) {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return stamp{}, false
	}
	return stamp{dev: uint64(sys.Dev), ino: sys.Ino, size: st.Size(), mode: st.Mode(), ctime: sys.Ctim}, true
}

// sameEntry compares two stamps but for the content hash.
func sameEntry(a, b stamp) bool {
	return a.dev == b.dev && a.ino == b.ino && a.size == b.size && a.mode == b.mode && a.ctime == b.ctime
}

// ErrFileName is wrapped when a file name would leave the directory or
// cannot be a file name at all. Callers validate names earlier (admission,
// config decoding); this is the last line, where the file is written.
var ErrFileName = errors.New("invalid file name")

func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%w: %q is not a file name", ErrFileName, name)
	case strings.ContainsAny(name, "/\\\x00"):
		return fmt.Errorf("%w: %q contains a path separator or NUL", ErrFileName, name)
	case len(name) > 255:
		return fmt.Errorf("%w: %d bytes, more than 255", ErrFileName, len(name))
	}
	return nil
}

func randomSuffix() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// createTemp creates a new temporary file for name. Its name is random, so
// nothing can be placed there in advance; O_EXCL|O_NOFOLLOW makes an entry
// that is there anyway an error (EEXIST), never a file opened.
func (f *Files) createTemp(name string, perm fs.FileMode) (*os.File, error) {
	suffix, err := f.tempSuffix()
	if err != nil {
		return nil, err
	}
	// Dot files are reserved for the agent: no user file name starts with a
	// dot. The name is cut so that a 255-byte name still has a temporary
	// file within the 255-byte limit.
	p := filepath.Join(f.dir, "."+name[:min(len(name), 200)]+".tmp-"+suffix)
	fd, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, perm)
	if err != nil {
		return nil, fmt.Errorf("creating a temporary file for %s: %w", name, err)
	}
	return fd, nil
}

// ErrTooLarge is wrapped when a file read with ReadRegular is larger than
// its bound.
var ErrTooLarge = errors.New("file larger than its bound")

// ReadRegular reads a regular file of at most limit bytes without ever
// blocking: lstat first, then a non-blocking, non-following open checked
// (fstat) to be the same regular file. A FIFO, socket, device node,
// symlink or directory at path is an error, not a wait.
func ReadRegular(path string, limit int64) ([]byte, error) {
	st, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: it is a %s", filepath.Base(path), ErrNotRegular, st.Mode().Type())
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: %w: %d bytes, more than %d", filepath.Base(path), ErrTooLarge, st.Size(), limit)
	}
	want, _ := stampOf(st)
	fd, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	fst, err := fd.Stat()
	if err != nil {
		return nil, err
	}
	if got, _ := stampOf(fst); !fst.Mode().IsRegular() || got.ino != want.ino || got.dev != want.dev {
		return nil, fmt.Errorf("%s: %w: replaced while being opened", filepath.Base(path), ErrNotRegular)
	}
	b, err := io.ReadAll(io.LimitReader(fd, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", filepath.Base(path), ErrTooLarge, limit)
	}
	return b, nil
}
