// Mixed pairs: a judge in Chromium and a party in Firefox ESR, and the
// other way round; each receives the other's video and audio.
import { test } from 'node:test';
import { launch, openPerson, hearing, join, probe, videoFlows, audioFlows } from './lib/harness.mjs';

test('mixed pairs', async (t) => {
  const chromium = await launch('chromium');
  const firefox = await launch('firefox');
  t.after(() => Promise.all([chromium.close(), firefox.close()]));
  for (const [judgeIn, partyIn] of [['chromium', 'firefox'], ['firefox', 'chromium']]) {
    await t.test(`judge in ${judgeIn}, party in ${partyIn}`, async () => {
      const { id, inv } = await hearing(`Mixed ${judgeIn}-${partyIn}`, [['Mari Maasikas', 'judge'], ['Jaan Tamm', 'party']]);
      const judge = await openPerson(judgeIn === 'chromium' ? chromium : firefox, 'judge', judgeIn);
      const party = await openPerson(partyIn === 'chromium' ? chromium : firefox, 'party', partyIn);
      // The judge is assigned staff: signs in to the console and enters.
      await join(judge, inv['Mari Maasikas'], id);
      await judge.wait(probe.inRoom);
      await join(party, inv['Jaan Tamm'], id);
      await judge.click('#tab-people');
      await judge.click('button.admit');
      await party.wait(probe.inRoom);
      await videoFlows(judge, inv['Jaan Tamm'].participant_id);
      await videoFlows(party, inv['Mari Maasikas'].participant_id);
      await audioFlows(judge, inv['Jaan Tamm'].participant_id);
      await audioFlows(party, inv['Mari Maasikas'].participant_id);
      await party.shot(`mixed-${partyIn}-party`);
      await judge.click('#leave-button');
      await party.click('#leave-button');
      await party.wait(`!!document.querySelector('#end-heading')`);
      await judge.page.close();
      await party.page.close();
    });
  }
});
