// The pull request's one sticky promptgate comment: created once, then updated in place.
// Used by the prompt-gate workflows through actions/github-script:
//   require(`${process.env.GITHUB_WORKSPACE}/.github/scripts/sticky-comment.js`)(
//     { github, context, core }, reportMdPath, verdict)
const fs = require('fs');

module.exports = async function sticky({ github, context, core }, reportMd, verdict) {
  const marker = '<!-- promptgate-report -->';
  let body = reportMd && fs.existsSync(reportMd) ? fs.readFileSync(reportMd, 'utf8') : '';
  if (!body.trim()) {
    const run = `${context.serverUrl}/${context.repo.owner}/${context.repo.repo}/actions/runs/${context.runId}`;
    body = `${marker}\n## ❗ promptgate: no report\n\nThe gate wrote no report: see [the job log](${run}).\n`;
  }
  if (!body.startsWith(marker)) body = `${marker}\n${body}`;
  const { owner, repo } = context.repo;
  const issue_number = context.payload.pull_request.number;
  const comments = await github.paginate(github.rest.issues.listComments,
    { owner, repo, issue_number, per_page: 100 });
  const previous = comments.find((c) => c.user && c.user.type === 'Bot'
    && (c.body || '').includes(marker));
  try {
    if (previous) {
      await github.rest.issues.updateComment({ owner, repo, comment_id: previous.id, body });
      core.info(`updated ${previous.html_url}`);
    } else if (verdict === 'nothing-to-check') {
      core.info('nothing to check and no earlier report: no comment');
    } else {
      const { data } = await github.rest.issues.createComment({ owner, repo, issue_number, body });
      core.info(`created ${data.html_url}`);
    }
  } catch (error) {
    if (error.status !== 403) throw error;
    // A fork's pull request gets a read-only token: the step summary has the report.
    core.warning(`cannot comment on this pull request: ${error.message}`);
  }
};
