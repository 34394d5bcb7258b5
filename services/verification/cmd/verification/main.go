// Command verification runs the verification service: SMS verification sessions of ICP filing orders.
package main

import (
	"github.com/icpverify/icpverify/pkg/config"
	"github.com/icpverify/icpverify/services/verification/server"
)

func main() { config.Main("verification", server.Run) }
