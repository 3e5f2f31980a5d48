package main

// sqlite.go: how the store's SQL is run on one SQLite file.
//
// The store (store.go) sees three methods: queryRow and query read on a
// pool of connections that run beside each other and beside the writer
// (WAL mode lets them), and inWriteTx runs a function in a write
// transaction. Every transaction starts with BEGIN IMMEDIATE, so that
// another process (jwtnotes flushexpiredtokens) waits its turn through
// busy_timeout instead of failing.
//
// It knows connections, transactions and SQLite's settings, not the tables.
//
// All of it but the pool of readers is tuning, each piece kept because
// without it a scenario of the perf harness misses its target:
// docs/PERFORMANCE.md has the figures, one entry a piece (group commit,
// the writer's yield, prepared statements, runToEnd, the checkpointer).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteSettings are the command line's choices for the database file.
// The zero value is the default: this process checkpoints, and every
// commit is on the disk before it is answered.
type sqliteSettings struct {
	// path is the database file; "" for DATA_DIR/notes.db.
	path string
	// replica: the file is a LiteFS replica's (replica.go), which only the
	// primary writes: it is read as it is, never migrated, checkpointed or
	// chmodded, and no search indexer runs on it.
	replica bool
	// externalCheckpoints: another process copies the write-ahead log back
	// into the database file, not this one (the checkpointer below, and
	// SQLite inside the commit that crosses walCheckpointPages of log):
	// Litestream, which must be the only one to checkpoint while it
	// replicates (-litestream). Without either the log grows.
	externalCheckpoints bool
	// normalSync is synchronous(NORMAL) instead of FULL: a commit is
	// written to the log but not synced, so a crash of the process loses
	// nothing, but a power cut can take the last commits that were already
	// answered (-synchronous normal; docs/RELIABILITY.md has the trade).
	normalSync bool
}

// sqliteDB is the database file as the store uses it.
type sqliteDB struct {
	read  *statements // many connections, query_only
	write *statements // exactly one connection, used by the writer goroutine only

	checkpoint *sql.DB // one connection, the checkpointer's; nil with externalCheckpoints

	writes        chan writeJob  // inWriteTx to the writer goroutine (unbuffered)
	checkpointDue chan struct{}  // the writer to the checkpointer: there are new commits
	closing       chan struct{}  // closed by close: the writer and the checkpointer stop
	stopped       sync.WaitGroup // the writer and the checkpointer
	commits       atomic.Int64   // transactions committed by the writer
	committed     atomic.Int64   // writes in them: committed/commits is the mean batch
	checkpointed  atomic.Int64   // checkpoints the checkpointer ran
}

// openSQLite opens the database at path, runs migrate on the write
// connection, then starts the writer.
func openSQLite(ctx context.Context, path string, settings sqliteSettings, migrate func(context.Context, *sql.DB) error) (*sqliteDB, error) {
	if err := ownerOnly(path); err != nil && !settings.replica {
		return nil, err
	}
	// Pragmas go in the DSN so that every pooled connection gets them; a
	// db.Exec("PRAGMA ...") would reach one connection only.
	// synchronous(FULL): in WAL mode a commit is synced to the log before
	// it returns, so what was answered survives a power cut; NORMAL syncs
	// only at checkpoints (sqliteSettings). Either keeps the database whole.
	// cache_size: 1 MiB of pages per connection, not SQLite's 2 MiB: the
	// hot pages fit, and the cache is memory outside Go's limit, once per
	// connection.
	synchronous := "FULL"
	if settings.normalSync {
		synchronous = "NORMAL"
	}
	common := "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(" + synchronous + ")&_pragma=cache_size(-1024)"
	writeOnly := "&_pragma=journal_mode(WAL)&_txlock=immediate"
	if settings.externalCheckpoints {
		writeOnly += "&_pragma=wal_autocheckpoint(0)"
	} else {
		writeOnly += fmt.Sprintf("&_pragma=wal_autocheckpoint(%d)", walCheckpointPages)
	}
	write, err := sql.Open("sqlite", dsn(path, common+writeOnly))
	if err != nil {
		return nil, err
	}
	write.SetMaxOpenConns(1)
	write.SetConnMaxIdleTime(0)
	if err := migrate(ctx, write); err != nil {
		write.Close()
		return nil, err
	}
	read, err := sql.Open("sqlite", dsn(path, common+"&_pragma=query_only(1)"))
	if err != nil {
		write.Close()
		return nil, err
	}
	readers := max(4, 2*runtime.NumCPU())
	read.SetMaxOpenConns(readers)
	read.SetMaxIdleConns(readers)
	d := &sqliteDB{read: newStatements(read), write: newStatements(write),
		writes: make(chan writeJob), closing: make(chan struct{})}
	if !settings.externalCheckpoints && !settings.replica {
		if d.checkpoint, err = sql.Open("sqlite", dsn(path, common)); err != nil {
			write.Close()
			read.Close()
			return nil, err
		}
		d.checkpoint.SetMaxOpenConns(1)
		d.checkpointDue = make(chan struct{}, 1)
		d.stopped.Add(1)
		go d.checkpoints()
	}
	d.stopped.Add(1)
	go d.writer()
	return d, nil
}

// ownerOnly makes the database file readable by its owner only, and its
// -wal and -shm, which SQLite creates with the database's mode: they hold
// password hashes, emails and private notes. A file that an older server
// made with a wider mode is narrowed.
func ownerOnly(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// dsn builds a modernc.org/sqlite data source name for a file path.
func dsn(path, query string) string {
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + query
}

// close stops the writer (after the batch in progress, if any) and closes
// every connection. Writes that arrive later get errStoreClosed.
func (d *sqliteDB) close() error {
	close(d.closing)
	d.stopped.Wait()
	err := errors.Join(d.read.close(), d.write.close())
	if d.checkpoint != nil {
		err = errors.Join(err, d.checkpoint.Close())
	}
	return err
}

// ping checks that the database answers.
func (d *sqliteDB) ping(ctx context.Context) error { return d.read.db.PingContext(ctx) }

// queryRow and query read, on the pool of readers.
func (d *sqliteDB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return d.read.queryRow(ctx, query, args...)
}

func (d *sqliteDB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return d.read.query(ctx, query, args...)
}

// isUniqueViolation reports whether err is SQLite refusing a row that a
// UNIQUE constraint forbids.
func isUniqueViolation(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// ---- writes: one writer, group commit ----
//
// In WAL mode most of what a small write transaction costs is fixed: BEGIN
// IMMEDIATE, then at COMMIT the changed pages appended to the log. So writes
// are not run one transaction each. Requests hand their write (a function
// of a *txn) to one writer goroutine; it takes every write that is waiting,
// runs them one after another in a single transaction, each inside its own
// SAVEPOINT, and commits once. A write whose function fails is rolled back
// to its savepoint alone; the others commit. No request is answered before
// the COMMIT that holds its write, so a success is as durable as before, and
// an idle server still commits each write at once: a batch is whatever
// queued while the previous one ran, never a timed wait for more.
//
// Before it starts a batch the writer gives its core away (runtime.Gosched)
// as long as doing so brought in more writes: requests already running get
// to hand theirs in, so a batch holds what is in flight rather than what
// happened to be queued. With nothing else runnable a yield returns at
// once, so a lone write is not delayed.

// errStoreClosed answers a write that arrives after close.
var errStoreClosed = errors.New("store closed")

// maxBatch bounds how many writes share one transaction (and so how long
// the last of them waits for the COMMIT).
const maxBatch = 64

// writeJob is one request's write transaction, queued for the writer.
type writeJob struct {
	ctx  context.Context
	fn   func(tx *txn) error
	done chan error // receives fn's result once its batch has committed or failed
}

// inWriteTx runs fn in a write transaction and commits if fn returns nil.
// fn may share the transaction with other requests' writes (see above), so
// it must not keep state between calls or wait on anything but the database.
func (d *sqliteDB) inWriteTx(ctx context.Context, fn func(tx *txn) error) error {
	job := writeJob{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case d.writes <- job:
		return <-job.done // the writer answers every job it took
	case <-ctx.Done():
		return ctx.Err()
	case <-d.closing:
		return errStoreClosed
	}
}

// writer runs the batches until close.
func (d *sqliteDB) writer() {
	defer d.stopped.Done()
	batch := make([]writeJob, 0, maxBatch)
	for {
		select {
		case job := <-d.writes:
			batch = append(batch[:0], job)
		case <-d.closing:
			return
		}
		yieldedAt := -1 // the batch's size when the writer last yielded
	gather: // take whatever else is waiting, without a timed wait
		for len(batch) < maxBatch {
			select {
			case job := <-d.writes:
				batch = append(batch, job)
			default:
				if yieldedAt == len(batch) { // the last yield brought nothing
					break gather
				}
				yieldedAt = len(batch)
				runtime.Gosched()
			}
		}
		d.commitBatch(batch)
		select { // nudge the checkpointer, unless a nudge is already waiting
		case d.checkpointDue <- struct{}{}: // a nil channel (-litestream) never takes it
		default:
		}
	}
}

// commitBatch runs batch in one transaction and answers each job.
func (d *sqliteDB) commitBatch(batch []writeJob) {
	results := make([]error, len(batch))
	err := d.runBatch(batch, results)
	for i, job := range batch {
		if err != nil { // the transaction is lost, and every write in it
			results[i] = err
		}
		job.done <- results[i]
	}
}

// runBatch runs each job in its own savepoint and commits. It returns an
// error only if the transaction as a whole failed.
func (d *sqliteDB) runBatch(batch []writeJob, results []error) error {
	// Not any request's context: one request that goes away must not roll
	// back the others (database/sql rolls a Tx back when its context ends).
	ctx := context.Background()
	tx, err := d.write.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	t := &txn{tx: tx, stmts: d.write}
	defer t.prepareMissed(ctx)
	for i, job := range batch {
		if err := job.ctx.Err(); err != nil {
			results[i] = err // its caller has gone: do not start it
			continue
		}
		if _, err := t.ExecContext(ctx, `SAVEPOINT job`); err != nil {
			tx.Rollback()
			return err
		}
		results[i] = runJob(t, job)
		if results[i] != nil {
			// Undo this job's changes only. If even that fails, SQLite has
			// given up the transaction (a full disk, an I/O error).
			if _, err := t.ExecContext(ctx, `ROLLBACK TO job`); err != nil {
				tx.Rollback()
				return err
			}
		}
		if _, err := t.ExecContext(ctx, `RELEASE job`); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	d.commits.Add(1)
	d.committed.Add(int64(len(batch)))
	return nil
}

// ---- checkpoints: beside the writer ----
//
// In WAL mode a commit appends its pages to notes.db-wal; a checkpoint
// copies them back into notes.db and waits for two fsyncs, and only once
// every page has been copied can the log start over from its beginning. By
// default SQLite checkpoints inside the commit that takes the log past 1000
// pages, and every write queued behind that commit waits for the disk.
//
// So this goroutine checkpoints on its own connection, beside the writer
// and the readers, after commits and at most once every checkpointEvery
// (PASSIVE: it copies what no reader still needs, and waits for nobody).
// It cannot finish the job alone: the writer keeps appending while it
// copies, so the log is never all copied when the next write begins. That
// is what the writer's own checkpoint, at walCheckpointPages, is left for:
// by then the checkpointer has copied nearly all of the log, the writer
// copies the rest and its two fsyncs find little to write, and the log
// starts over. If the checkpointer is copying just then, the writer's
// checkpoint is skipped and the log grows on until the next commit finds
// the way free. notes.db-wal stays near walCheckpointPages pages (16 MB);
// TestCheckpointerKeepsTheLogShort holds it within twice that.

const (
	checkpointEvery    = 50 * time.Millisecond
	walCheckpointPages = 4000
)

// checkpoints runs until close. A checkpoint that fails is retried after
// the next commit; the log only grows meanwhile, up to the writer's own.
func (d *sqliteDB) checkpoints() {
	defer d.stopped.Done()
	rest := time.NewTimer(0)
	defer rest.Stop()
	for {
		select { // checkpointEvery since the last
		case <-rest.C:
		case <-d.closing:
			return
		}
		select { // and a commit since
		case <-d.checkpointDue:
		case <-d.closing:
			return
		}
		if _, err := d.checkpoint.Exec(`PRAGMA wal_checkpoint(PASSIVE)`); err == nil {
			d.checkpointed.Add(1)
		}
		rest.Reset(checkpointEvery)
	}
}

// runJob calls the job's function. A panic in it becomes that job's error,
// with the stack: it must not take the writer, and every waiting request,
// down with it.
func runJob(t *txn, job writeJob) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in a write transaction: %v\n%s", p, debug.Stack())
		}
	}()
	return job.fn(t)
}

// txn is a write transaction, as the store's write functions see it.
type txn struct {
	tx     *sql.Tx
	stmts  *statements
	missed []string // queries not prepared on the pool yet
}

func (t *txn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = runToEnd(ctx)
	st, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (t *txn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = runToEnd(ctx)
	st, err := t.stmt(ctx, query)
	if err != nil {
		return t.tx.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

func (t *txn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = runToEnd(ctx)
	st, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// stmt returns query's statement for this transaction. One not prepared yet
// cannot be prepared on the pool now: its only connection is this
// transaction's. So it is prepared within the transaction for this once, and
// for good after the transaction (prepareMissed).
func (t *txn) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := t.stmts.cached(query); st != nil {
		return t.tx.StmtContext(ctx, st), nil
	}
	t.missed = append(t.missed, query)
	return t.tx.PrepareContext(ctx, query)
}

func (t *txn) prepareMissed(ctx context.Context) {
	for _, query := range t.missed {
		t.stmts.stmt(ctx, query) // an error here only means it is prepared next time
	}
}

// ---- prepared statements ----

// statements runs a *sql.DB's queries as prepared statements, each SQL
// string prepared once and reused: SQLite then parses each query once per
// connection (database/sql keeps a prepared copy on every connection that
// ran it). The queries are constant strings, so the cache stays small and
// never evicts. The *sql.DB is not embedded: nothing can reach it except
// through the cache.
type statements struct {
	db    *sql.DB
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

func newStatements(db *sql.DB) *statements {
	return &statements{db: db, stmts: map[string]*sql.Stmt{}}
}

// stmt returns the prepared statement for query, preparing it on first use.
func (p *statements) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := p.cached(query); st != nil {
		return st, nil
	}
	st, err := p.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, ok := p.stmts[query]; ok { // another request prepared it meanwhile
		st.Close()
		return prev, nil
	}
	p.stmts[query] = st
	return st, nil
}

func (p *statements) cached(query string) *sql.Stmt {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stmts[query]
}

// prepared lists the SQL of every statement prepared so far (the query-plan
// test reads it).
func (p *statements) prepared() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := make([]string, 0, len(p.stmts))
	for q := range p.stmts {
		list = append(list, q)
	}
	return list
}

// queryRow runs query as a prepared statement. (If it cannot be prepared,
// the plain call reports the same error through the *sql.Row.)
func (p *statements) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = runToEnd(ctx)
	st, err := p.stmt(ctx, query)
	if err != nil {
		return p.db.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

func (p *statements) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = runToEnd(ctx)
	st, err := p.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (p *statements) close() error {
	for _, st := range p.stmts {
		st.Close()
	}
	return p.db.Close()
}

// runToEnd is the context a query runs under: the request's, without its
// cancellation. Every query here is short (indexed, a page at most), and
// watching a cancelable context costs database/sql a goroutine per query,
// about as much as a one-row lookup itself. So a query whose request has
// gone away still runs to its end.
func runToEnd(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }
