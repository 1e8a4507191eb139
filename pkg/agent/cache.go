package agent

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	tmpl "github.com/blinkchamber/blinkchamber/pkg/template"
)

// action is what an entry needs next.
type action string

const (
	// actionReread re-reads a static secret (KV) at the render interval.
	actionReread action = "reread"
	// actionRenew extends a renewable lease.
	actionRenew action = "renew"
	// actionReissue fetches a new secret: the lease cannot be extended
	// further (max TTL), was lost, or was never renewable.
	actionReissue action = "reissue"
	// actionNone: a write without a lease (issued once).
	actionNone action = "none"
)

// entry is one answer from Vault and its schedule.
type entry struct {
	Req     tmpl.Request `json:"req"`
	Secret  *api.Secret  `json:"secret,omitempty"`
	List    []string     `json:"list,omitempty"`
	Fetched time.Time    `json:"fetched"`
	// Expires is when the lease ends; zero without a lease.
	Expires time.Time `json:"expires,omitzero"`
	Due     time.Time `json:"due"`
	Action  action    `json:"action"`
	// Increment is the lease duration first granted, asked for at each
	// renewal; a shorter grant means the max TTL is near.
	Increment int `json:"increment,omitempty"`
}

// cache holds every answer the templates use. Its lookup is what templates
// see; the agent fills and refreshes it.
type cache struct {
	mu      sync.Mutex
	entries map[string]*entry
	// version counts changes of any answer's content, so the agent renders
	// only when something a template may read has changed.
	version uint64
	// phase, in [0, 1), places this agent's static re-reads in their
	// interval. One phase for all of an agent's secrets keeps them due
	// together (one pass, no early reads); a random one per agent spreads
	// a fleet.
	phase float64
}

func newCache() *cache { return &cache{entries: map[string]*entry{}, phase: rand.Float64()} }

// lookup answers a template's request from the cache.
func (c *cache) lookup(r tmpl.Request) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[r.Key()]
	if !ok {
		return nil, false
	}
	if r.Op == tmpl.OpList {
		return e.List, true
	}
	return toSecret(e.Secret), true
}

func (c *cache) put(e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := e.Req.Key()
	old, ok := c.entries[k]
	if !ok {
		c.spreadFirstReread(e)
	} else {
		keepRereadPhase(old, e)
	}
	if !ok || !sameContent(old, e) {
		c.version++
	}
	c.entries[k] = e
}

// spreadFirstReread moves the first re-read of a static secret new to the
// cache to the agent's phase of its interval. Agents started together (a
// rollout, a node coming back) would otherwise re-read in the same second
// for as long as they run. Later re-reads keep the beat (keepRereadPhase)
// at exactly the interval: per-read jitter would only make them more
// frequent, since a re-read may never come later than an interval after
// the last answer.
func (c *cache) spreadFirstReread(e *entry) {
	span := e.Due.Sub(e.Fetched)
	if e.Action != actionReread || e.Fetched.IsZero() || span <= 0 {
		return
	}
	e.Due = e.Fetched.Add(span - time.Duration(c.phase*float64(span)))
}

// keepRereadPhase schedules a static secret's next re-read one interval
// after the previous re-read was due, not after its answer came.
// A stall (a slow Vault, a starved node) hands every agent that waited on it
// its answer at the same moment; counting from that moment would line them
// all up, and they would stay lined up. It is never later than an interval
// after the answer.
func keepRereadPhase(old, e *entry) {
	span := e.Due.Sub(e.Fetched)
	if old.Action != actionReread || e.Action != actionReread || old.Due.IsZero() || e.Fetched.IsZero() || span <= 0 {
		return
	}
	due := old.Due.Add(span)
	if !due.After(e.Fetched) {
		// Answered more than an interval late: skip ahead on the same beat.
		due = due.Add((e.Fetched.Sub(due)/span + 1) * span)
	}
	if limit := e.Fetched.Add(span); due.After(limit) {
		// Refreshed early with another due secret.
		due = limit
	}
	e.Due = due
}

// sameContent compares what templates can see of two answers.
func sameContent(a, b *entry) bool {
	if (a.Secret == nil) != (b.Secret == nil) || !reflect.DeepEqual(a.List, b.List) {
		return false
	}
	if a.Secret == nil {
		return true
	}
	return a.Secret.LeaseID == b.Secret.LeaseID && a.Secret.LeaseDuration == b.Secret.LeaseDuration &&
		reflect.DeepEqual(a.Secret.Data, b.Secret.Data)
}

func (c *cache) currentVersion() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}

// retain drops every entry whose key is not in keep.
func (c *cache) retain(keep map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.entries {
		if !keep[k] {
			delete(c.entries, k)
		}
	}
}

// due returns the entries whose time comes before until, oldest first.
// Callers pass a little slack so that entries fetched moments apart are
// refreshed in one pass rather than one wake-up each.
func (c *cache) due(until time.Time) []*entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*entry
	for _, e := range c.entries {
		if e.Action != actionNone && !e.Due.After(until) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Due.Before(out[j].Due) })
	return out
}

// next is the earliest due time, or zero when nothing is scheduled.
func (c *cache) next() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var t time.Time
	for _, e := range c.entries {
		if e.Action != actionNone && (t.IsZero() || e.Due.Before(t)) {
			t = e.Due
		}
	}
	return t
}

// reissueLeases schedules every leased secret for a fresh fetch now: after
// a new login the old token's leases die with it.
func (c *cache) reissueLeases(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if !e.Expires.IsZero() {
			// Copy on write: the loop may be reading e outside the lock.
			n := *e
			n.Action, n.Due = actionReissue, now
			c.entries[k] = &n
		}
	}
}

// snapshot copies the entries, for saving state and metrics.
func (c *cache) snapshot() []entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]entry, 0, len(c.entries))
	for _, e := range c.entries {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Req.Key() < out[j].Req.Key() })
	return out
}

// schedule decides what an entry needs next, from what Vault just granted.
// Static secrets are re-read at the interval (spread by the agent's phase),
// leases are renewed at two thirds of their life and re-issued at 85 % of
// the last grant once renewal can no longer extend them; jitter (never
// later than that) spreads a fleet's renewals so agents started together
// do not stampede Vault.
func schedule(e *entry, now time.Time, interval time.Duration) {
	s := e.Secret
	switch {
	case e.Req.Op == tmpl.OpList || s == nil || s.LeaseID == "" && e.Req.Op == tmpl.OpRead:
		e.Expires = time.Time{}
		e.Action, e.Due = actionReread, now.Add(interval)
	case s.LeaseID == "":
		// A write without a lease (pki/issue): issued again at two thirds of
		// its certificate's life when it has an expiration, else once.
		if exp, ok := expiration(s); ok {
			e.Action, e.Due = actionReissue, now.Add(jitter(max(exp.Sub(now)*2/3, minLeaseTTL)))
		} else {
			e.Action, e.Due = actionNone, time.Time{}
		}
	default:
		// A floor on the TTL: a lease granted for 0 s must not make a hot
		// renewal loop.
		ttl := max(time.Duration(s.LeaseDuration)*time.Second, minLeaseTTL)
		e.Expires = now.Add(ttl)
		if e.Increment == 0 {
			e.Increment = s.LeaseDuration
		}
		capped := s.LeaseDuration < e.Increment
		if s.Renewable && !capped {
			e.Action, e.Due = actionRenew, now.Add(jitter(ttl*2/3))
		} else {
			e.Action, e.Due = actionReissue, now.Add(jitter(ttl*85/100))
		}
	}
}

// minLeaseTTL is the shortest lease life the schedule works with.
const minLeaseTTL = time.Second

// expiration reads the "expiration" (Unix seconds) PKI answers carry.
func expiration(s *api.Secret) (time.Time, bool) {
	switch v := s.Data["expiration"].(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return time.Unix(n, 0), true
		}
	case float64:
		return time.Unix(int64(v), 0), true
	}
	return time.Time{}, false
}

// jitter spreads d by up to -10 %.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d - time.Duration(rand.Int64N(int64(d)/10+1))
}

// toSecret converts Vault's answer to what `secret` gives templates.
func toSecret(s *api.Secret) *tmpl.Secret {
	if s == nil {
		return nil
	}
	d := &tmpl.Secret{
		RequestID: s.RequestID, LeaseID: s.LeaseID, LeaseDuration: s.LeaseDuration,
		Renewable: s.Renewable, Data: s.Data, Warnings: s.Warnings,
	}
	if d.Data == nil {
		d.Data = map[string]any{}
	}
	return d
}

// listKeys reads the keys of a LIST answer.
func listKeys(s *api.Secret) []string {
	if s == nil {
		return []string{}
	}
	raw, _ := s.Data["keys"].([]any)
	out := make([]string, 0, len(raw))
	for _, k := range raw {
		if str, ok := k.(string); ok {
			out = append(out, str)
		}
	}
	return out
}
