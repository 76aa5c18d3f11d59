/**
 * The peer: getmail6 (Debian) fetching the same mailbox over IMAPS with XOAUTH2 into a Maildir
 * (getmail fsyncs each delivered message). It refuses Maildir delivery as root, so it runs as
 * `nobody`, under a tiny Python wrapper that reports its children's peak RSS and CPU.
 * With use_xoauth2 getmail takes the token only from password_command (a plain `password` is
 * ignored and it prompts for one).
 */
import { execFile, spawn } from "node:child_process";
import { chown, copyFile, mkdir, readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface GetmailInput {
  readonly dir: string;
  readonly host: string;
  readonly port: number;
  readonly caFile: string;
  readonly user: string;
  readonly token: string;
}

export interface GetmailResult {
  readonly messages: number;
  readonly ms: number;
  readonly maxRssBytes: number;
  readonly cpuMicros: number;
}

const RUSAGE_WRAPPER = `
import resource, subprocess, sys, json
code = subprocess.run(sys.argv[1:]).returncode
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": code, "maxrss_kb": usage.ru_maxrss, "cpu_s": usage.ru_utime + usage.ru_stime}))
`;

/**
 * getmail 6.18 reaps its password_command child in a SIGCHLD handler that notifies a condition
 * variable before getmail waits on it when the child exits fast: the wake-up is lost and getmail
 * fails after 60 s ("waiting child pid ... timed out"; getmailcore/baseclasses.py ForkingBase).
 * A command that takes half a second is always waited for in time; the half second is taken
 * off the measured time.
 */
const PASSWORD_COMMAND_DELAY_S = 0.5;

export async function getmailAvailable(): Promise<boolean> {
  try {
    await run("getmail", ["--version"]);
    return true;
  } catch {
    return false;
  }
}

async function nobody(): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run("id", ["-u", "nobody"]), run("id", ["-g", "nobody"])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** One fetch of the whole mailbox into a fresh Maildir; the Maildir is removed afterwards. */
export async function runGetmail(input: GetmailInput): Promise<GetmailResult> {
  const owner = process.getuid?.() === 0 ? await nobody() : undefined;
  await rm(input.dir, { recursive: true, force: true });
  const maildir = path.join(input.dir, "Maildir");
  const state = path.join(input.dir, "state");
  for (const sub of ["", "new", "cur", "tmp"]) await mkdir(path.join(maildir, sub), { recursive: true });
  await mkdir(state, { recursive: true });
  const tokenFile = path.join(input.dir, "token");
  const caFile = path.join(input.dir, "ca.pem");
  await writeFile(tokenFile, input.token, { mode: 0o600 });
  await copyFile(input.caFile, caFile);
  const rcFile = path.join(input.dir, "getmailrc");
  await writeFile(
    rcFile,
    [
      "[retriever]",
      "type = SimpleIMAPSSLRetriever",
      `server = ${input.host}`,
      `port = ${input.port}`,
      `username = ${input.user}`,
      "use_xoauth2 = True",
      // The token command outlives getmail's wait for it (see PASSWORD_COMMAND_DELAY_S).
      `password_command = ("/bin/sh", "-c", "sleep ${PASSWORD_COMMAND_DELAY_S}; exec /bin/cat ${tokenFile}")`,
      `ca_certs = ${caFile}`,
      'mailboxes = ("INBOX",)',
      "",
      "[destination]",
      "type = Maildir",
      `path = ${maildir}/`,
      "",
      "[options]",
      "read_all = true",
      "delete = false",
      "verbose = 0",
      "message_log_syslog = false",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  if (owner) {
    for (const entry of [input.dir, maildir, state, tokenFile, caFile, rcFile, ...["new", "cur", "tmp"].map((s) => path.join(maildir, s))]) {
      await chown(entry, owner.uid, owner.gid);
    }
  }
  const started = performance.now();
  const { stdout: output, stderr } = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn("python3", ["-c", RUSAGE_WRAPPER, "getmail", "--getmaildir", state, "--rcfile", rcFile], {
      uid: owner?.uid,
      gid: owner?.gid,
      cwd: input.dir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve({ stdout, stderr }) : reject(new Error(`getmail wrapper exited ${code}: ${stderr.slice(-500)}`))));
  });
  // The token command's deliberate delay is not getmail's work.
  const ms = performance.now() - started - PASSWORD_COMMAND_DELAY_S * 1000;
  const report = JSON.parse(output.trim().split("\n").pop() ?? "{}") as { code: number; maxrss_kb: number; cpu_s: number };
  if (report.code !== 0) throw new Error(`getmail exited ${report.code}: ${(stderr || output).slice(-800)}`);
  const messages = (await readdir(path.join(maildir, "new"))).length;
  await rm(input.dir, { recursive: true, force: true });
  return { messages, ms, maxRssBytes: report.maxrss_kb * 1024, cpuMicros: report.cpu_s * 1e6 };
}
