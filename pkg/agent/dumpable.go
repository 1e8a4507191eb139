package agent

import "golang.org/x/sys/unix"

// hideFromSameUID marks the agent's process not dumpable. The agent runs as
// the app's uid, and a pod with signal-<name> shares its process namespace:
// without this, the app's processes could read the agent's memory (its
// Vault token) through ptrace or /proc/<pid>/mem, and its environment.
// Non-dumpable, those need CAP_SYS_PTRACE, which no container of the pod
// has by default. The agent can still read its own /proc/self.
func hideFromSameUID() error {
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}
