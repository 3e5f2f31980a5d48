package main

// schema.go: bringing a database to the schema of schema.sql.
//
// schema.sql holds the current schema whole, then the upgrades from each
// older version; PRAGMA user_version says where a database is. migrate runs
// once at open, on the write connection, before anything else touches the
// database.
//
// It knows schema.sql's layout and SQLite's user_version, not the tables.

import (
	"context"
	"database/sql"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
)

//go:embed schema.sql
var schemaSQL string

// schemaStep is a part of schema.sql: the current schema, or one upgrade.
type schemaStep struct {
	version int // the version a database is at once the step is applied
	sql     string
}

// migrate brings the database to the current schema: a new one gets the
// current schema whole, an older one each upgrade it has not had yet, each
// step in its own transaction together with its PRAGMA user_version.
func migrate(ctx context.Context, db *sql.DB) error {
	current, upgrades, err := schemaSteps()
	if err != nil {
		return err
	}
	var have int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&have); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if have == 0 {
		return applySchemaStep(ctx, db, current)
	}
	if have > current.version {
		return fmt.Errorf("the database is at schema version %d, newer than this program's %d", have, current.version)
	}
	for _, step := range upgrades {
		if step.version > have {
			if err := applySchemaStep(ctx, db, step); err != nil {
				return err
			}
		}
	}
	return nil
}

func applySchemaStep(ctx context.Context, db *sql.DB, step schemaStep) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // after Commit, a no-op
	if _, err := tx.ExecContext(ctx, step.sql); err != nil {
		return fmt.Errorf("schema version %d: %w", step.version, err)
	}
	// PRAGMA takes no placeholders; version is an int we produced.
	if _, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(step.version)); err != nil {
		return err
	}
	return tx.Commit()
}

// schemaSteps splits schema.sql at its "-- schema version N" line (the
// current schema) and its "-- upgrade to version N" lines. The upgrades
// must be numbered 2, 3, ... up to the current version.
func schemaSteps() (current schemaStep, upgrades []schemaStep, err error) {
	inCurrent := false
	for _, line := range strings.SplitAfter(schemaSQL, "\n") {
		trimmed := strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(trimmed, "-- schema version "); ok {
			current.version, err = strconv.Atoi(v)
			inCurrent = true
		} else if v, ok := strings.CutPrefix(trimmed, "-- upgrade to version "); ok {
			upgrades = append(upgrades, schemaStep{})
			upgrades[len(upgrades)-1].version, err = strconv.Atoi(v)
		} else if len(upgrades) > 0 {
			upgrades[len(upgrades)-1].sql += line
		} else if inCurrent {
			current.sql += line
		}
		if err != nil {
			return schemaStep{}, nil, fmt.Errorf("schema.sql: %q: %w", trimmed, err)
		}
	}
	for i, u := range upgrades {
		if u.version != i+2 {
			return schemaStep{}, nil, fmt.Errorf("schema.sql: upgrade to version %d where %d was due", u.version, i+2)
		}
	}
	if current.version != len(upgrades)+1 {
		return schemaStep{}, nil, fmt.Errorf("schema.sql: the current schema is version %d, the upgrades end at %d", current.version, len(upgrades)+1)
	}
	return current, upgrades, nil
}
