/* answer_fixture.h: the fixture the extractive-answer test programs share: a
 * snapshot built from a directory of the source tree (TORO_SOURCE_DIR) into a
 * temporary directory, opened as `kb`, with the extractive answerer `ans` on
 * it. Include it once per test program, after cmocka.h; call
 * answer_fixture_setup from the group setup and answer_fixture_teardown from
 * the group teardown, which removes the snapshot and its directory. */
#ifndef TORO_TESTS_ANSWER_FIXTURE_H
#define TORO_TESTS_ANSWER_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "answer/answer.h"
#include "kb/index.h"
#include "kb/kb.h"

static char fixture_dir[64], fixture_snap[128];
static toro_kb_t *kb;
static toro_answerer_t *ans;

/* rel_dir: the documents, relative to the source tree ("kb/docs"). */
static int answer_fixture_setup(const char *rel_dir)
{
    const char *src = getenv("TORO_SOURCE_DIR");
    char docs[2048];
    snprintf(docs, sizeof docs, "%s/%s", src ? src : ".", rel_dir);
    snprintf(fixture_dir, sizeof fixture_dir, "/tmp/toro-ans-test-XXXXXX");
    if (!mkdtemp(fixture_dir))
        return -1;
    snprintf(fixture_snap, sizeof fixture_snap, "%s/a.kb", fixture_dir);
    char *err = NULL;
    if (toro_kb_build_dir(docs, fixture_snap, NULL, NULL, NULL, NULL, &err) != 0 ||
        toro_kb_open(fixture_snap, &kb, &err) != 0) {
        fprintf(stderr, "snapshot of %s: %s\n", docs, err ? err : "?");
        free(err);
        return -1;
    }
    return toro_answerer_extractive_new(kb, &ans);
}

/* Answers q into *a (caller clears): no error, relevant documents found. */
static inline void answer_fixture_ask(const char *q, toro_answer_t *a)
{
    char *err = NULL;
    assert_int_equal(toro_answerer_answer(ans, q, a, &err), 0);
    assert_null(err);
    assert_true(a->found_relevant_docs);
}

static int answer_fixture_teardown(void)
{
    toro_answerer_free(ans);
    toro_kb_close(kb);
    unlink(fixture_snap);
    return rmdir(fixture_dir);
}

#endif
