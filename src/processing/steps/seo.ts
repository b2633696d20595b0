import { defineStep } from '../step.ts';
import { fleschReadingEase } from '../text/readability.ts';
import { metaDescription, seoScore, slugify } from '../text/seo.ts';
import { summarize } from '../text/summarize.ts';
import { plainText } from './keywords.ts';

export const seoStep = defineStep({
  name: 'seo',
  description:
    'Slug suggested by the title, meta description, Flesch reading ease and an SEO score with its checks.',
  async run(context) {
    const { post, progress } = context;
    const text = plainText(context);
    const readingEase = fleschReadingEase(text);
    await progress(40);
    // A suggestion only: changing a live post's slug would break every link to it.
    const slug = slugify(post.title);
    const description = metaDescription(post.summary ?? summarize(text, 2));
    const { score, checks } = seoScore({
      title: post.title,
      text,
      keywords: post.keywords,
      metaDescription: description,
      readingEase,
    });
    await progress(100);
    return {
      output: { slug, readingEase, metaDescription: description, score, checks },
      post: { meta_description: description, readability_score: readingEase, seo_score: score },
    };
  },
});
