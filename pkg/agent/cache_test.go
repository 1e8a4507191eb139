package agent

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	tmpl "github.com/blinkchamber/blinkchamber/pkg/template"
)

func TestSchedule(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	interval := 5 * time.Second
	read := tmpl.Request{Op: tmpl.OpRead, Path: "secret/data/a"}
	write := tmpl.Request{Op: tmpl.OpWrite, Path: "pki/issue/x", Data: map[string]string{"common_name": "a"}}
	cases := []struct {
		name      string
		req       tmpl.Request
		secret    *api.Secret
		increment int
		action    action
		// due lies in [min, max] after now
		min, max time.Duration
	}{
		{"static kv is re-read within the interval", read, &api.Secret{Data: map[string]any{}}, 0, actionReread, interval * 9 / 10, interval},
		{"kv v1 lease duration without lease id is static", read, &api.Secret{LeaseDuration: 2764800}, 0, actionReread, interval * 9 / 10, interval},
		{"renewable lease renews at two thirds", read, &api.Secret{LeaseID: "l", LeaseDuration: 30, Renewable: true}, 0, actionRenew, 18 * time.Second, 20 * time.Second},
		{"renewal capped by max ttl re-issues", read, &api.Secret{LeaseID: "l", LeaseDuration: 10, Renewable: true}, 30, actionReissue, 7650 * time.Millisecond, 8500 * time.Millisecond},
		{"non-renewable lease re-issues at 85 percent", read, &api.Secret{LeaseID: "l", LeaseDuration: 100}, 0, actionReissue, 76500 * time.Millisecond, 85 * time.Second},
		{"write without lease is issued once", write, &api.Secret{Data: map[string]any{}}, 0, actionNone, 0, 0},
		{"certificate re-issued at two thirds of its life", write, &api.Secret{Data: map[string]any{"expiration": json.Number(fmt.Sprint(now.Add(time.Hour).Unix()))}}, 0, actionReissue, 36 * time.Minute, 40 * time.Minute},
		{"zero-second lease is not a hot loop", read, &api.Secret{LeaseID: "l", LeaseDuration: 0, Renewable: true}, 0, actionRenew, 600 * time.Millisecond, time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := &entry{Req: tc.req, Secret: tc.secret, Increment: tc.increment}
			schedule(e, now, interval)
			if e.Action != tc.action {
				t.Fatalf("action = %s, want %s", e.Action, tc.action)
			}
			if tc.action == actionNone {
				if !e.Due.IsZero() {
					t.Fatalf("due = %v, want none", e.Due)
				}
				return
			}
			if d := e.Due.Sub(now); d < tc.min || d > tc.max {
				t.Fatalf("due in %s, want between %s and %s", d, tc.min, tc.max)
			}
		})
	}
}

func TestCacheReissueAfterLogin(t *testing.T) {
	c := newCache()
	now := time.Now()
	leased := &entry{Req: tmpl.Request{Op: tmpl.OpRead, Path: "database/creds/app"}, Secret: &api.Secret{LeaseID: "l", LeaseDuration: 60, Renewable: true}}
	static := &entry{Req: tmpl.Request{Op: tmpl.OpRead, Path: "secret/data/a"}, Secret: &api.Secret{}}
	schedule(leased, now, time.Second)
	schedule(static, now, time.Hour)
	c.put(leased)
	c.put(static)
	c.reissueLeases(now)
	due := c.due(now)
	if len(due) != 1 || due[0].Req.Path != "database/creds/app" || due[0].Action != actionReissue {
		t.Fatalf("due after a new login = %+v, want only the lease, re-issued", due)
	}
}

func TestBackoffBounded(t *testing.T) {
	b := newBackoff()
	prev := time.Duration(0)
	for i := range 20 {
		d := b.next()
		if d < backoffMin/2 || d > backoffMax {
			t.Fatalf("step %d: %s outside [%s, %s]", i, d, backoffMin/2, backoffMax)
		}
		prev = d
	}
	if prev < backoffMax/2 {
		t.Fatalf("backoff did not grow to its maximum: last %s", prev)
	}
}

func TestCacheRetain(t *testing.T) {
	c := newCache()
	old := &entry{Req: tmpl.Request{Op: tmpl.OpRead, Path: "database/creds/old"}, Secret: &api.Secret{LeaseID: "l", LeaseDuration: 60, Renewable: true}}
	cur := &entry{Req: tmpl.Request{Op: tmpl.OpRead, Path: "secret/data/a"}, Secret: &api.Secret{}}
	c.put(old)
	c.put(cur)
	c.retain(map[string]bool{cur.Req.Key(): true})
	if _, ok := c.lookup(old.Req); ok {
		t.Error("an entry no template reads was kept")
	}
	if _, ok := c.lookup(cur.Req); !ok {
		t.Error("an entry a template reads was dropped")
	}
}
