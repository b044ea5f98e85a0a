throw new Error('broken preload on purpose')
