// Command blinkchamber-agent renders a pod's Vault secrets into its
// in-memory volume and keeps them fresh. The injector configures it through
// the BLINKCHAMBER_AGENT_CONFIG environment variable.
package main

import (
	"os"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
)

func main() { os.Exit(agent.Main(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)) }
