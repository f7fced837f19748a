/**
 * For crash-test children: stdout to a pipe is asynchronous on POSIX (Node's "A note on
 * process I/O"), so a line still queued in the child when it is killed never reaches the
 * parent. `reportLine` resolves once the line has been written to the pipe, where it
 * outlives the process.
 */
export function reportLine(line: string): Promise<void> {
  return new Promise((resolve, reject) => process.stdout.write(line, (err) => (err ? reject(err) : resolve())));
}
