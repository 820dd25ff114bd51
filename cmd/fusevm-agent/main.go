// Command fusevm-agent is the guest agent of fusevm (package fusevm/agent)
// on its own. The fusevm binary carries the same agent and is what guest
// images use as /init; this command is for running or testing the agent
// apart from the host CLI.
package main

import (
	"os"

	"fusevm/agent"
)

func main() {
	os.Exit(agent.Main(os.Args[1:]))
}
