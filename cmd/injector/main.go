// Command injector is blinkchamber's mutating admission webhook.
package main

import (
	"os"

	"github.com/blinkchamber/blinkchamber/pkg/injector"
)

func main() { os.Exit(injector.Main(os.Args[1:], os.Stderr)) }
