package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
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
func (e *env) firstRenders(ctx context.Context, o options) (map[key][]time.Duration, map[int][]phases, error) {
	out, split := map[key][]time.Duration{}, map[int][]phases{}
	for _, n := range o.sizes {
		for i := range o.starts {
			for _, kind := range kinds {
				d, ph, err := e.firstRender(ctx, kind, n, o.interval, fmt.Sprintf("start-%d-%d", n, i))
				if err != nil {
					return nil, nil, fmt.Errorf("%s with %d secrets, start %d: %w", kind, n, i+1, err)
				}
				k := key{kind, n}
				out[k] = append(out[k], d)
				if ph != nil {
					split[n] = append(split[n], *ph)
				}
			}
		}
		progress("first render, %d secrets: %s %s, %s %s", n,
			ours, median(out[key{ours, n}]), vaultAgent, median(out[key{vaultAgent, n}]))
	}
	return out, split, nil
}

// firstRender times one start; for blinkchamber-agent it also splits the
// time by the agent's own log (nil when the log does not allow it).
func (e *env) firstRender(ctx context.Context, kind agentKind, n int, interval time.Duration, tag string) (time.Duration, *phases, error) {
	p, err := e.start(ctx, kind, benchPaths(n), interval, tag)
	if err != nil {
		return 0, nil, err
	}
	d, err := p.waitFiles(ctx, n)
	p.stop()
	if err != nil || kind != ours {
		return d, nil, err
	}
	ph, err := readPhases(p.logPath, p.started)
	if err != nil {
		progress("no split of a first render: %v", err)
		return d, nil, nil
	}
	return d, &ph, nil
}

// phases splits one of blinkchamber-agent's first renders by the times of
// its own log lines.
type phases struct {
	init   time.Duration // process start to its first log line: exec, runtime and package init, config
	login  time.Duration // to "logged in to vault"
	reads  time.Duration // to the first file written: the parallel reads, then one template run
	writes time.Duration // to the last file written
}

// readPhases reads the agent's JSON log (zap: "ts" in RFC 3339, "msg").
func readPhases(logPath string, started time.Time) (phases, error) {
	f, err := os.Open(logPath)
	if err != nil {
		return phases{}, err
	}
	defer f.Close()
	var first, login, firstFile, lastFile time.Time
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			TS  string `json:"ts"`
			Msg string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, line.TS)
		if err != nil {
			continue
		}
		switch {
		case first.IsZero():
			first = ts
		case line.Msg == "logged in to vault" && login.IsZero():
			login = ts
		case line.Msg == "rendered":
			if firstFile.IsZero() {
				firstFile = ts
			}
			lastFile = ts
		}
	}
	if login.IsZero() || firstFile.IsZero() {
		return phases{}, fmt.Errorf("%s: no \"logged in to vault\" or \"rendered\" line", logPath)
	}
	return phases{init: first.Sub(started), login: login.Sub(first), reads: firstFile.Sub(login), writes: lastFile.Sub(firstFile)}, nil
}
