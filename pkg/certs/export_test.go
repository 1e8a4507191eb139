package certs

import "time"

// SetClock lets the external tests move an Issuer through a CA's lifetime
// without waiting for it.
func SetClock(i *Issuer, now func() time.Time) { i.now = now }
