/** libfuse's service-mount protocol v1: layouts, argv memfd, and a message channel. */
export * from './constants';
export * from './errors';
export * from './messages';
export * from './argv';
export * from './channel';
