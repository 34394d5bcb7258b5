// Command filing runs the filing service: orders, subjects, who must verify, and the order states.
package main

import (
	"github.com/icpverify/icpverify/pkg/config"
	"github.com/icpverify/icpverify/services/filing/server"
)

func main() { config.Main("filing", server.Run) }
