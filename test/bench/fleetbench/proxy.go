package main

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// class is what a request to Vault was for.
type class string

const (
	classLogin      class = "login"
	classRead       class = "read"
	classLeaseRenew class = "lease renew"
	classTokenRenew class = "token renew"
	classLookup     class = "token lookup"
	classOther      class = "other"
)

func classify(r *http.Request) class {
	p := r.URL.Path
	switch {
	case strings.HasSuffix(p, "/login"):
		return classLogin
	case strings.HasPrefix(p, "/v1/sys/leases/renew"), strings.HasPrefix(p, "/v1/sys/renew"):
		return classLeaseRenew
	case strings.HasPrefix(p, "/v1/auth/token/renew"):
		return classTokenRenew
	case strings.HasPrefix(p, "/v1/auth/token/lookup"):
		return classLookup
	case r.Method == http.MethodGet:
		return classRead
	}
	return classOther
}

// request is one request to Vault as the proxy saw it.
type request struct {
	at     time.Time
	took   time.Duration
	class  class
	status int
}

// proxy sits between every agent and Vault and records each request; it is
// the fleet's view of Vault (and what Vault's answers cost them).
type proxy struct {
	srv *http.Server
	mu  sync.Mutex
	log []request
}

func startProxy(target string) (*proxy, string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, "", err
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	// The default keeps 2 idle connections per host: hundreds of agents
	// would make it dial Vault anew for nearly every request.
	rp.Transport = &http.Transport{MaxIdleConns: 4 * maxFleet, MaxIdleConnsPerHost: 4 * maxFleet, IdleConnTimeout: 5 * time.Minute}
	// Agents stopped mid-request at the end of a fleet are expected.
	rp.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	p := &proxy{}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		rp.ServeHTTP(sw, r)
		p.add(request{at: start, took: time.Since(start), class: classify(r), status: sw.status})
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(l) }()
	return p, "http://" + l.Addr().String(), nil
}

func (p *proxy) add(r request) {
	p.mu.Lock()
	p.log = append(p.log, r)
	p.mu.Unlock()
}

// between returns the requests that started in [from, to).
func (p *proxy) between(from, to time.Time) []request {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []request
	for _, r := range p.log {
		if !r.at.Before(from) && r.at.Before(to) {
			out = append(out, r)
		}
	}
	return out
}

func (p *proxy) close() { _ = p.srv.Close() }

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}
