// Package config declares the flags every binary shares. Each flag can also be set from the
// environment: --grpc-addr reads GRPC_ADDR, --database-url reads DATABASE_URL, and so on; a flag
// given on the command line wins over the environment, which wins over the default.
package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Default listen addresses of the four services; also the default peer addresses.
const (
	DefaultFilingAddr       = "127.0.0.1:50051"
	DefaultVerificationAddr = "127.0.0.1:50052"
	DefaultSMSDispatchAddr  = "127.0.0.1:50053"
	DefaultDeadlineAddr     = "127.0.0.1:50054"
)

// EnvName is the environment variable that backs a flag: grpc-addr -> GRPC_ADDR.
func EnvName(flagName string) string {
	return strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Flags is a flag set whose flags fall back to environment variables.
type Flags struct {
	*flag.FlagSet
	// EnvNames overrides the environment variable of some flags (flag name -> variable), for
	// flags whose derived name would be too generic, such as a CLI's --output.
	EnvNames map[string]string
	envErrs  []error
}

func (f *Flags) envName(flagName string) string {
	if e, ok := f.EnvNames[flagName]; ok {
		return e
	}
	return EnvName(flagName)
}

// NewFlags returns an empty flag set for the named binary.
func NewFlags(name string) *Flags {
	return &Flags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError)}
}

// String declares a string flag.
func (f *Flags) String(name, def, usage string) *string {
	if v, ok := os.LookupEnv(f.envName(name)); ok {
		def = v
	}
	return f.FlagSet.String(name, def, fmt.Sprintf("%s (env %s)", usage, f.envName(name)))
}

// Duration declares a duration flag.
func (f *Flags) Duration(name string, def time.Duration, usage string) *time.Duration {
	if v, ok := os.LookupEnv(f.envName(name)); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("env %s: %w", f.envName(name), err))
		}
		def = d
	}
	return f.FlagSet.Duration(name, def, fmt.Sprintf("%s (env %s)", usage, f.envName(name)))
}

// Int declares an int flag.
func (f *Flags) Int(name string, def int, usage string) *int {
	if v, ok := os.LookupEnv(f.envName(name)); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("env %s: %w", f.envName(name), err))
		}
		def = n
	}
	return f.FlagSet.Int(name, def, fmt.Sprintf("%s (env %s)", usage, f.envName(name)))
}

// Bool declares a bool flag.
func (f *Flags) Bool(name string, def bool, usage string) *bool {
	if v, ok := os.LookupEnv(f.envName(name)); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("env %s: %w", f.envName(name), err))
		}
		def = b
	}
	return f.FlagSet.Bool(name, def, fmt.Sprintf("%s (env %s)", usage, f.envName(name)))
}

// Parse parses the command line after the environment was read.
func (f *Flags) Parse(args []string) error {
	if err := errors.Join(f.envErrs...); err != nil {
		return err
	}
	return f.FlagSet.Parse(args)
}

// Common holds the flags every service takes.
type Common struct {
	Store           *string
	GRPCAddr        *string
	DatabaseURL     *string
	DatabaseSchema  *string
	LogLevel        *string
	ShutdownTimeout *time.Duration
}

// RegisterCommon declares the shared flags with a service's defaults.
func RegisterCommon(f *Flags, defaultAddr, defaultSchema string) Common {
	return Common{
		Store:           f.String("store", StorePostgres, "storage engine: postgres, or memory (the one-process development server: nothing survives a restart)"),
		GRPCAddr:        f.String("grpc-addr", defaultAddr, "address the gRPC server listens on"),
		DatabaseURL:     f.String("database-url", "", "PostgreSQL URL, e.g. postgres://user@host:5432/db?sslmode=disable (required)"),
		DatabaseSchema:  f.String("database-schema", defaultSchema, "PostgreSQL schema this service owns; created and migrated at start"),
		LogLevel:        f.String("log-level", "info", "log level: debug, info, warn, error"),
		ShutdownTimeout: f.Duration("shutdown-timeout", 15*time.Second, "on SIGTERM, how long in-flight RPCs may finish before a hard stop"),
	}
}

// The storage engines.
const (
	StorePostgres = "postgres"
	StoreMemory   = "memory"
)

// Memory tells whether the service runs on the in-memory engine.
func (c Common) Memory() bool { return *c.Store == StoreMemory }

// Check reports missing or contradictory shared flags.
func (c Common) Check() error {
	switch *c.Store {
	case StorePostgres:
		if *c.DatabaseURL == "" {
			return errors.New("--database-url (or DATABASE_URL) is required with --store=postgres")
		}
	case StoreMemory:
	default:
		return fmt.Errorf("--store %q: use postgres or memory", *c.Store)
	}
	if *c.GRPCAddr == "" {
		return errors.New("--grpc-addr (or GRPC_ADDR) is required")
	}
	return nil
}
