package main

import (
	"context"
	"fmt"
	"time"
)

// key names one agent at one number of secrets.
type key struct {
	kind    agentKind
	secrets int
}

// kinds is the order both agents are run and reported in.
var kinds = []agentKind{ours, vaultAgent}

// firstRenders times, for each size, o.starts starts of each agent from
// process start to every file written. The agents alternate start by start
// so that load from elsewhere on the machine falls on both alike.
func (e *env) firstRenders(ctx context.Context, o options) (map[key][]time.Duration, error) {
	out := map[key][]time.Duration{}
	for _, n := range o.sizes {
		for i := range o.starts {
			for _, kind := range kinds {
				d, err := e.firstRender(ctx, kind, n, o.interval, fmt.Sprintf("start-%d-%d", n, i))
				if err != nil {
					return nil, fmt.Errorf("%s with %d secrets, start %d: %w", kind, n, i+1, err)
				}
				k := key{kind, n}
				out[k] = append(out[k], d)
			}
		}
		progress("first render, %d secrets: %s %s, %s %s", n,
			ours, median(out[key{ours, n}]), vaultAgent, median(out[key{vaultAgent, n}]))
	}
	return out, nil
}

func (e *env) firstRender(ctx context.Context, kind agentKind, n int, interval time.Duration, tag string) (time.Duration, error) {
	p, err := e.start(ctx, kind, benchPaths(n), interval, tag)
	if err != nil {
		return 0, err
	}
	defer p.stop()
	return p.waitFiles(ctx, n)
}
