// Command blinkchamber provisions Vault and the platform (bootstrap) and
// operates it (plan, status, unseal, secrets rotate).
package main

import (
	"os"

	"github.com/blinkchamber/blinkchamber/pkg/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
