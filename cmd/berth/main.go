// Command berth runs containers in production from a Compose file.
package main

import (
	"context"
	"os"

	"github.com/berth-dev/berth/cli"
)

func main() {
	os.Exit(cli.Execute(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
