/* SPDX-License-Identifier: MIT */
/*
 * VFPM_API marks what libvfpm exports.  The library is built with hidden
 * visibility: a function without it is private to the library, whatever
 * its name, and CI checks that every exported symbol is one of these.
 */
#ifndef VFPM_EXPORT_H
#define VFPM_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define VFPM_API __attribute__((visibility("default")))
#else
#define VFPM_API
#endif

#endif /* VFPM_EXPORT_H */
