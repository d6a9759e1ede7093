// SPDX-License-Identifier: MIT
/*
 * Reading conformance/scenarios.txt.  The format (see conformance/README.md):
 *
 *   scenario ID  TITLE
 *     covers: ...   about: ...   note: ...      free text for the reader
 *     only: kernel|vfpm because WHY              the other target cannot do it
 *     step COMMAND ARGS... => EXPECTED
 *     step COMMAND ARGS... => kernel:X vfpm:Y because WHY
 */
#include "engine_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int fail(char *err, size_t errlen, const char *path, unsigned int line, const char *fmt,
		...)
{
	va_list ap;
	int n = snprintf(err, errlen, "%s:%u: ", path, line);

	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < errlen)
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* "kernel:X vfpm:Y because WHY" or "X". */
static int parse_expect(struct conf_step *st, char *s)
{
	char *because = strstr(s, " because ");

	if (because) {
		*because = '\0';
		st->why = strdup(trim(because + 9));
	}
	s = trim(s);
	if (!strncmp(s, "kernel:", 7)) {
		char *v = strstr(s, " vfpm:");

		if (!v || !st->why)
			return -1;
		*v = '\0';
		st->expect_kernel = strdup(trim(s + 7));
		st->expect_vfpm = strdup(trim(v + 6));
	} else {
		if (!*s || strchr(s, ' '))
			return -1;
		st->expect_kernel = strdup(s);
		st->expect_vfpm = strdup(s);
	}
	return 0;
}

static int add_step(struct conf_scenario *sc, char *s, unsigned int line)
{
	char *arrow = strstr(s, "=>");
	struct conf_step *st, *grown;
	char *save = NULL, *tok;

	if (!arrow)
		return -1;
	grown = realloc(sc->steps, (sc->nsteps + 1) * sizeof(*grown));
	if (!grown)
		return -1;
	sc->steps = grown;
	st = &sc->steps[sc->nsteps++];
	memset(st, 0, sizeof(*st));
	st->line = line;
	*arrow = '\0';
	if (parse_expect(st, arrow + 2))
		return -1;
	st->text = strdup(trim(s));
	for (tok = strtok_r(s, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		if (st->argc == CONF_MAX_ARGS)
			return -1;
		st->argv[st->argc++] = strdup(tok);
	}
	return st->argc ? 0 : -1;
}

int conf_load(const char *path, struct conf_set **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	struct conf_set *set;
	struct conf_scenario *sc = NULL;
	char buf[1024];
	unsigned int line = 0;
	int rc = 0;

	if (!f) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	set = calloc(1, sizeof(*set));
	if (!set) {
		fclose(f);
		return -ENOMEM;
	}
	while (!rc && fgets(buf, sizeof(buf), f)) {
		char *s = trim(buf);

		line++;
		if (!*s || *s == '#')
			continue;
		if (!strncmp(s, "scenario ", 9)) {
			struct conf_scenario *grown = realloc(set->sc, (set->n + 1) * sizeof(*grown));
			char *id = trim(s + 9), *title = id;

			if (!grown) {
				rc = -ENOMEM;
				break;
			}
			set->sc = grown;
			sc = &set->sc[set->n++];
			memset(sc, 0, sizeof(*sc));
			sc->line = line;
			while (*title && !isspace((unsigned char)*title))
				title++;
			if (*title)
				*title++ = '\0';
			sc->id = strdup(id);
			sc->title = strdup(trim(title));
			for (unsigned int i = 0; i + 1 < set->n; i++)
				if (!strcmp(set->sc[i].id, sc->id))
					rc = fail(err, errlen, path, line, "scenario '%s' twice", id);
		} else if (!sc) {
			rc = fail(err, errlen, path, line, "text before the first 'scenario'");
		} else if (!strncmp(s, "step ", 5)) {
			if (add_step(sc, s + 5, line))
				rc = fail(err, errlen, path, line,
					  "a step is 'step COMMAND ARGS => EXPECTED' or '=> kernel:X "
					  "vfpm:Y because WHY'");
		} else if (!strncmp(s, "only:", 5)) {
			char *v = trim(s + 5), *because = strstr(v, " because ");

			if (!because || (strncmp(v, "kernel ", 7) && strncmp(v, "vfpm ", 5))) {
				rc = fail(err, errlen, path, line,
					  "'only: kernel|vfpm because WHY'");
				continue;
			}
			*because = '\0';
			sc->only = strdup(trim(v));
			sc->only_why = strdup(trim(because + 9));
		} else {
			char *colon = strchr(s, ':'), *sp = strpbrk(s, " \t");

			if (!colon || (sp && sp < colon))
				rc = fail(err, errlen, path, line,
					  "expected 'scenario', 'step', 'only:' or a 'word: text' note");
		}
	}
	fclose(f);
	for (unsigned int i = 0; !rc && i < set->n; i++)
		if (!set->sc[i].nsteps)
			rc = fail(err, errlen, path, set->sc[i].line, "scenario '%s' has no steps",
				  set->sc[i].id);
	if (rc) {
		conf_free(set);
		return rc;
	}
	*out = set;
	return 0;
}

void conf_free(struct conf_set *set)
{
	if (!set)
		return;
	for (unsigned int i = 0; i < set->n; i++) {
		struct conf_scenario *sc = &set->sc[i];

		for (unsigned int j = 0; j < sc->nsteps; j++) {
			struct conf_step *st = &sc->steps[j];

			for (int a = 0; a < st->argc; a++)
				free(st->argv[a]);
			free(st->text);
			free(st->expect_kernel);
			free(st->expect_vfpm);
			free(st->why);
		}
		free(sc->steps);
		free(sc->id);
		free(sc->title);
		free(sc->only);
		free(sc->only_why);
	}
	free(set->sc);
	free(set);
}

unsigned int conf_count(const struct conf_set *set)
{
	return set->n;
}
