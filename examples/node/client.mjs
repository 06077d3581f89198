// A client of the errands HTTP API with Node's standard library only (fetch, Node >= 18).
//
//   node examples/node/client.mjs   # enqueue math.add and poll its result, then enqueue
//                                   # text.shout and work its queue through the pull API
//
// ERRANDS_API is the API's base URL, ERRANDS_TOKEN its bearer token (if it has any).
import { hostname } from "node:os";
import { pathToFileURL } from "node:url";

const api = process.env.ERRANDS_API ?? "http://127.0.0.1:8080/api/v1";
const token = process.env.ERRANDS_TOKEN;

/** An API error: `status` and the problem+json `problem` (type, title, status, detail). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(`${status} ${problem.title}: ${problem.detail}`);
    this.status = status;
    this.problem = problem;
  }
}

async function call(method, path, body) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${api}/${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const payload = await response.json();
  if (!response.ok) throw new ApiError(response.status, payload);
  return payload;
}

/** Store a job for `task` (any name: a Python task or one of yours); returns its id. */
export async function enqueue(task, args = [], options = {}) {
  const { jobs } = await call("POST", "jobs", { task, args, ...options });
  return jobs[0].id;
}

/** The job's result once it is done (long polls of `timeout` seconds); throws if it failed. */
export async function result(id, { timeout = 30 } = {}) {
  for (;;) {
    const job = await call("GET", `jobs/${id}/wait?timeout=${timeout}`);
    if (!job.done) continue;
    if (job.state === "completed") return job.result;
    const last = job.errors.at(-1);
    throw new Error(`job ${id} ended ${job.state}${last ? `: ${last.type}: ${last.message}` : ""}`);
  }
}

/**
 * Work `queue`: claim jobs under a lease, run `handler(...args, kwargs)`, extend the lease while
 * it runs, and finish with the lease token. Returns after a claim that waited `wait` seconds in
 * vain when `untilIdle`, else runs forever.
 */
export async function work(queue, handler, { lease = 30, wait = 20, untilIdle = false } = {}) {
  const worker_id = `node-${hostname()}-${process.pid}`;
  for (;;) {
    const { jobs } = await call("POST", `queues/${queue}/claim`, { worker_id, n: 1, lease, wait });
    if (jobs.length === 0) {
      if (untilIdle) return;
      continue;
    }
    for (const job of jobs) await runOne(job, handler, worker_id, lease);
  }
}

async function runOne(job, handler, worker_id, lease) {
  const { id, token } = job;
  // Extend at a third of the lease, so one late extend does not lose the job.
  const keeper = setInterval(() => {
    call("POST", `jobs/${id}/extend`, { token, worker_id, lease }).catch(() => {});
  }, (lease * 1000) / 3);
  let outcome;
  try {
    const value = await handler(...job.args, job.kwargs);
    outcome = { token, outcome: "completed", result: value ?? null };
  } catch (error) {
    outcome = {
      token,
      outcome: "failed",
      error: { type: error.name, message: error.message, traceback: error.stack ?? "" },
    };
  } finally {
    clearInterval(keeper);
  }
  try {
    await call("POST", `jobs/${id}/finish`, outcome);
  } catch (error) {
    // 409: the lease was lost (the job was taken back and runs elsewhere): drop it.
    if (!(error instanceof ApiError && error.status === 409)) throw error;
    console.error(`job ${id}: ${error.message}`);
  }
}

async function main() {
  const sum = await result(await enqueue("math.add", [2, 3]));
  console.log(`math.add(2, 3) = ${sum}`);

  const id = await enqueue("text.shout", ["hello from node"], { queue: "node" });
  await work("node", async (text) => text.toUpperCase(), { wait: 1, untilIdle: true });
  console.log(`text.shout -> ${await result(id)}`);
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
