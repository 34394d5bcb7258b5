// Command sms-dispatch runs the SMS dispatch service; see server.Run for its flags.
package main

import (
	"github.com/icpverify/icpverify/pkg/config"
	"github.com/icpverify/icpverify/services/sms-dispatch/server"
)

func main() { config.Main("sms-dispatch", server.Run) }
