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

// needSchema is a LiteFS replica's migrate (replica.go): it changes
// nothing, and is errReplicaNotReady until the primary has brought the
// database to this program's schema and LiteFS has delivered it.
func needSchema(ctx context.Context, db *sql.DB) error {
	current, _, err := schemaSteps()
	if err != nil {
		return err
	}
	var have int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&have); err != nil {
		return fmt.Errorf("%w: %v", errReplicaNotReady, err)
	}
	switch {
	case have > current.version:
		return fmt.Errorf("the database is at schema version %d, newer than this program's %d", have, current.version)
	case have < current.version:
		return fmt.Errorf("%w: schema version %d, this program's is %d", errReplicaNotReady, have, current.version)
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

// schemaShape describes what a database is made of, one line a thing, in
// name order: each table's columns and foreign keys, each index's SQL,
// each trigger's and view's SQL (white space folded), and the search
// index's settings. Two databases of one shape have the same tables,
// indexes, triggers and views, whatever the comments in their CREATE
// statements; restore refuses a database whose shape is not the one this
// server makes (a trigger of its own could make every new note public).
func schemaShape(ctx context.Context, db *sql.DB) (string, error) {
	rows, err := db.QueryContext(ctx, `
		SELECT 'column ' || m.name || '.' || c.name || ' ' || c.type || ' notnull=' || c."notnull" ||
			' default=' || coalesce(c.dflt_value, '-') || ' pk=' || c.pk || ' hidden=' || c.hidden
		FROM sqlite_schema m, pragma_table_xinfo(m.name) c WHERE m.type = 'table'
		UNION ALL
		SELECT 'foreign key ' || m.name || '.' || f."from" || ' -> ' || f."table" || '.' || f."to" ||
			' on delete ' || f.on_delete
		FROM sqlite_schema m, pragma_foreign_key_list(m.name) f WHERE m.type = 'table'
		UNION ALL
		SELECT 'table ' || name || ' ' || iif(sql LIKE '%WITHOUT ROWID', 'without rowid', 'rowid')
		FROM sqlite_schema WHERE type = 'table'
		UNION ALL
		SELECT type || ' ' || name || ' on ' || tbl_name || ': ' || coalesce(sql, '(automatic)')
		FROM sqlite_schema WHERE type IN ('index', 'trigger', 'view')
		UNION ALL
		SELECT 'search index setting ' || k || ' = ' || v FROM notes_search_config
		ORDER BY 1`)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return "", err
		}
		lines = append(lines, strings.Join(strings.Fields(line), " "))
	}
	return strings.Join(lines, "\n"), rows.Err()
}
