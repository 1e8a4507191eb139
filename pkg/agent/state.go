package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/hashicorp/vault/api"

	tmpl "github.com/blinkchamber/blinkchamber/pkg/template"
)

// stateFile is what an init agent leaves for its sidecar, in the state
// volume that only agent containers mount: the token and every answer with
// its lease, so the sidecar neither logs in again nor issues new
// credentials.
const stateFile = "state.json"

type savedState struct {
	Auth    *api.Secret `json:"auth"`
	Entries []entry     `json:"entries"`
}

func saveState(dir string, auth *api.Secret, entries []entry) error {
	b, err := json.Marshal(savedState{Auth: auth, Entries: entries})
	if err != nil {
		return fmt.Errorf("encoding agent state: %w", err)
	}
	if _, err := tmpl.WriteFile(dir, stateFile, b, 0o600); err != nil {
		return fmt.Errorf("saving agent state: %w", err)
	}
	return nil
}

// maxStateSize bounds the state file read: a token and the leases of a
// pod's secrets, each at most a few KiB.
const maxStateSize = 16 << 20

func loadState(dir string) (*savedState, error) {
	b, err := tmpl.ReadRegular(filepath.Join(dir, stateFile), maxStateSize)
	if err != nil {
		return nil, err
	}
	// Vault's numbers stay json.Number, as the API client decodes them, so
	// a port renders as 5432 and not 5432.0 or 5.432e+03.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var st savedState
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("decoding agent state: %w", err)
	}
	if st.Auth == nil || st.Auth.Auth == nil || st.Auth.Auth.ClientToken == "" {
		return nil, fmt.Errorf("agent state holds no token")
	}
	return &st, nil
}
