package toolchain

// Lock takes an exclusive file lock at path, waiting for it, and returns
// its release: for other caches that parallel test processes share.
func Lock(path string) (func(), error) { return lock(path) }
