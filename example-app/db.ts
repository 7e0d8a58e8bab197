// The example's database: SQLite compiled to WebAssembly (sql.js), in memory by default or
// in a file with DATABASE_FILE. It counts queries, so that a cache hit visibly saves some.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import initSqlJs from 'sql.js'
import type { Database as SqlDatabase, SqlValue } from 'sql.js'

export interface Listing { id: number, title: string, city: string, price: number, ownerId: number, views: number }
export interface User { id: number, email: string, name: string }
export interface Booking { id: number, listingId: number, userId: number, nights: number, title?: string }

const SCHEMA = `
create table if not exists users (id integer primary key, email text unique not null, name text not null);
create table if not exists listings (id integer primary key, title text not null, city text not null,
  price integer not null, owner_id integer not null references users(id), views integer not null default 0);
create table if not exists bookings (id integer primary key, listing_id integer not null references listings(id),
  user_id integer not null references users(id), nights integer not null, created_at text not null default (datetime('now')));
`

const CITIES = ['Lisbon', 'Nairobi', 'Cape Town', 'Lagos', 'Accra', 'Porto']

export class Database {
  queries = 0
  readonly #db: SqlDatabase
  readonly #file: string | undefined

  private constructor (db: SqlDatabase, file: string | undefined) {
    this.#db = db
    this.#file = file
  }

  /** Opens the database (DATABASE_FILE or memory) and seeds it when empty. */
  static async open (file = process.env.DATABASE_FILE): Promise<Database> {
    const require = createRequire(import.meta.url)
    const SQL = await initSqlJs({ locateFile: (name: string) => require.resolve(`sql.js/dist/${name}`) })
    const db = new Database(file !== undefined && existsSync(file) ? new SQL.Database(readFileSync(file)) : new SQL.Database(), file)
    db.#db.run(SCHEMA)
    if (db.one<{ n: number }>('select count(*) as n from users')?.n === 0) db.#seed()
    return db
  }

  #seed (): void {
    this.run('insert into users (email, name) values (?, ?), (?, ?)', ['alice@example.com', 'Alice', 'bob@example.com', 'Bob'])
    for (let i = 1; i <= 24; i++) {
      this.run('insert into listings (title, city, price, owner_id) values (?, ?, ?, ?)', [`Flat ${i} in ${CITIES[i % CITIES.length]}`, CITIES[i % CITIES.length] as string, 40 + i * 5, 1 + (i % 2)])
    }
  }

  all<T> (sql: string, params: SqlValue[] = []): T[] {
    this.queries++
    const stmt = this.#db.prepare(sql)
    try {
      stmt.bind(params)
      const rows: T[] = []
      while (stmt.step()) rows.push(stmt.getAsObject() as T)
      return rows
    } finally {
      stmt.free()
    }
  }

  one<T> (sql: string, params: SqlValue[] = []): T | undefined {
    return this.all<T>(sql, params)[0]
  }

  run (sql: string, params: SqlValue[] = []): number {
    this.queries++
    this.#db.run(sql, params)
    return this.one<{ id: number }>('select last_insert_rowid() as id')?.id ?? 0
  }

  /** Writes the database to DATABASE_FILE, when one is set. */
  save (): void {
    if (this.#file !== undefined) writeFileSync(this.#file, this.#db.export())
  }

  close (): void {
    this.save()
    this.#db.close()
  }
}
