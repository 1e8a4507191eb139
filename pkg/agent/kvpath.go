package agent

import (
	"context"
	"strings"
	"sync"

	"github.com/hashicorp/vault/api"

	tmpl "github.com/blinkchamber/blinkchamber/pkg/template"
)

// kvMounts remembers which secret mounts are KV version 2, so that a path
// written for Vault Agent, "secret/app" on a KV v2 mount, reads
// "secret/data/app" (and lists "secret/metadata/app") as consul-template
// does. Paths that already name data/ or metadata/ are left alone.
type kvMounts struct {
	mu sync.Mutex
	// v2 holds the KV v2 mount paths found ("secret/"); other holds the
	// paths whose mount is not KV v2 or could not be asked about, so each
	// is asked about once.
	v2    []string
	other map[string]bool
}

// mountInfo is what sys/internal/ui/mounts/<path> says of a path's mount;
// any token with a capability inside a mount may ask.
type mountInfo struct {
	path string
	v2   bool
}

// apiPath is the path to send for req: rewritten for KV v2 mounts.
func (m *kvMounts) apiPath(ctx context.Context, c *api.Client, req tmpl.Request) string {
	if req.Op != tmpl.OpRead && req.Op != tmpl.OpList || namesKVV2(req.Path) {
		return req.Path
	}
	info, known := m.lookup(req.Path)
	if !known {
		info = askMount(ctx, c, req.Path)
		m.remember(req.Path, info)
	}
	if !info.v2 {
		return req.Path
	}
	return kvV2Path(req.Op, info.path, req.Path)
}

// lookup says what is known of path's mount, and whether anything is.
func (m *kvMounts) lookup(path string) (mountInfo, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, mount := range m.v2 {
		if strings.HasPrefix(path, mount) {
			return mountInfo{path: mount, v2: true}, true
		}
	}
	return mountInfo{}, m.other[path]
}

func (m *kvMounts) remember(path string, info mountInfo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if info.v2 {
		m.v2 = append(m.v2, info.path)
		return
	}
	if m.other == nil {
		m.other = map[string]bool{}
	}
	m.other[path] = true
}

// askMount asks Vault which mount path is in. A refusal or an old Vault
// means "not known to be KV v2": the path is then read as written.
func askMount(ctx context.Context, c *api.Client, path string) mountInfo {
	s, err := c.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+path)
	if err != nil || s == nil {
		return mountInfo{}
	}
	mount, _ := s.Data["path"].(string)
	kind, _ := s.Data["type"].(string)
	opts, _ := s.Data["options"].(map[string]any)
	version, _ := opts["version"].(string)
	if mount == "" || !strings.HasSuffix(mount, "/") || (kind != "kv" && kind != "generic") || version != "2" {
		return mountInfo{}
	}
	return mountInfo{path: mount, v2: true}
}

// kvV2Path inserts data/ (read) or metadata/ (list) after a KV v2 mount.
func kvV2Path(op tmpl.Op, mount, path string) string {
	rest := strings.TrimPrefix(path, mount)
	prefix := "data/"
	if op == tmpl.OpList {
		prefix = "metadata/"
	}
	if strings.HasPrefix(rest, prefix) {
		return path
	}
	return mount + prefix + rest
}

// namesKVV2 reports a path already written for KV v2 on a one-segment mount
// (secret/data/app, secret/metadata/app), the form blinkchamber's own
// annotations produce: no need to ask Vault about its mount.
func namesKVV2(path string) bool {
	parts := strings.SplitN(path, "/", 3)
	return len(parts) == 3 && (parts[1] == "data" || parts[1] == "metadata")
}
