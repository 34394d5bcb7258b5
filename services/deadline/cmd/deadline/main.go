// Command deadline runs the deadline service: durable verification-deadline timers and the sweeper
// that closes incomplete sessions when they fall due.
package main

import (
	"github.com/icpverify/icpverify/pkg/config"
	"github.com/icpverify/icpverify/services/deadline/server"
)

func main() { config.Main("deadline", server.Run) }
